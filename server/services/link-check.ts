/**
 * "Verify the link works", as a Mac would: through the configured public
 * address (never the Host of the admin's request), a HEAD and ranged GETs,
 * checking status, size, range support and that sampled bytes hash the same
 * as the stored package's bytes at the same offsets. It runs on the server,
 * so it also says when the address is one no Mac can reach, and gives the
 * `curl -I` line that confirms the link from a Mac.
 */
import { createHash } from 'node:crypto';
import type { BlobStore } from '../../storage/blob-store.js';
import type { Sha256 } from '../../storage/digest.js';
import { ARCHES, type Arch } from './arches.js';
import type { ServiceDeps } from './deps.js';
import type { ImageView } from './image-views.js';
import { curlCommand, LINK_CHECK_USER_AGENT, readCapped } from '../links.js';
import { PUBLIC_ADDRESS_MISSING, type PublicAddress } from './settings.js';

const SAMPLE_BYTES = 64 * 1024;

const TIMEOUT_MS = 10_000;

export interface CheckStep {
  name: string;
  ok: boolean;
  detail: string;
}

export interface ArchCheck {
  label: string;
  url: string | null;
  ok: boolean;
  steps: CheckStep[];
  /** One line to run in Terminal on a Mac to confirm the link from there (null without a URL). */
  curl: string | null;
}

/** Said with every report: a pass proves the server answers at the address, not that Macs can reach it. */
export const CHECKED_FROM_SERVER =
  'These requests were made by the goldmirror server itself, not by a Mac: a pass shows that the mirror answers at this address, not that every Mac can reach it.';

export interface LinkCheckReport {
  /** Every step of every enabled architecture passed (from the server; see warnings). */
  ok: boolean;
  checkedAt: string;
  /** Always "server": where the requests came from. */
  checkedFrom: 'server';
  note: string;
  /** The public address the links start with (null while none is set). */
  publicUrl: string | null;
  /** Why Macs cannot use these links even where the steps pass (loopback, link-local, localhost): shown in red. */
  warnings: string[];
  /** Only enabled architectures are checked. */
  architectures: Partial<Record<Arch, ArchCheck>>;
}

/**
 * How the check reaches a link (global fetch; tests may pass their own). The
 * check exists to fetch this mirror through its public address, so the outbound
 * guard does not apply: it only ever fetches links built from that address,
 * and the one hop a ranged GET of them redirects to (redirect mode on S3).
 */
export type LinkFetch = (
  url: string,
  init: { method?: 'HEAD'; headers: Record<string, string>; redirect: 'manual'; signal: AbortSignal },
) => Promise<Response>;

/** Checks the links of `view`, whose URLs must have been built from `address`. */
export async function checkImageLinks(
  deps: Pick<ServiceDeps, 'store' | 'clock'>,
  view: ImageView,
  address: PublicAddress,
  request: LinkFetch = fetch,
): Promise<LinkCheckReport> {
  const { store } = deps;
  const startedAt = deps.clock.now();
  const architectures: LinkCheckReport['architectures'] = {};
  for (const arch of ARCHES) {
    const a = view[arch];
    if (!a.enabled) continue;
    architectures[arch] =
      address.url === null
        ? addressMissing(a.label)
        : await checkArch(store, a.label, a.url, a.sha256, a.size, request);
  }
  const results = Object.values(architectures);
  return {
    ok: results.length > 0 && results.every((r) => r.ok),
    checkedAt: new Date(startedAt).toISOString(),
    checkedFrom: 'server',
    note: CHECKED_FROM_SERVER,
    publicUrl: address.url,
    warnings: address.warnings,
    architectures,
  };
}

function addressMissing(label: string): ArchCheck {
  return {
    label,
    url: null,
    ok: false,
    steps: [{ name: 'public address', ok: false, detail: PUBLIC_ADDRESS_MISSING }],
    curl: null,
  };
}

async function checkArch(
  store: BlobStore,
  label: string,
  url: string | null,
  sha256: string | null,
  size: number | null,
  request: LinkFetch,
): Promise<ArchCheck> {
  const steps: CheckStep[] = [];
  const done = (): ArchCheck => ({
    label,
    url,
    ok: steps.length > 0 && steps.every((s) => s.ok),
    steps,
    curl: url === null ? null : curlCommand(url),
  });
  if (url === null || sha256 === null || size === null) {
    steps.push({ name: 'package', ok: false, detail: 'the package is not stored on this mirror' });
    return done();
  }

  let head: Response;
  try {
    head = await request(url, {
      method: 'HEAD',
      headers: { 'User-Agent': LINK_CHECK_USER_AGENT },
      redirect: 'manual',
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (err) {
    steps.push({ name: 'reachable', ok: false, detail: describeFetchError(err, url) });
    return done();
  }
  steps.push({ name: 'reachable', ok: true, detail: `answered HTTP ${head.status}` });
  if (head.status >= 300 && head.status < 400) {
    steps.push({
      name: 'status',
      ok: false,
      detail: `redirects to ${head.headers.get('location') ?? '?'}; set the public address (Settings, or MIRROR_PUBLIC_URL) to the one Macs use`,
    });
    return done();
  }
  steps.push({
    name: 'status',
    ok: head.status === 200,
    detail: head.status === 200 ? '200 OK' : `expected 200, got ${head.status}`,
  });
  const length = Number(head.headers.get('content-length'));
  steps.push({
    name: 'size',
    ok: length === size,
    detail:
      length === size
        ? `${size} bytes`
        : `expected ${size} bytes, the link says ${head.headers.get('content-length') ?? 'nothing'}`,
  });
  const ranges = head.headers.get('accept-ranges') ?? '';
  steps.push({
    name: 'range support',
    ok: /\bbytes\b/.test(ranges),
    detail: ranges ? `Accept-Ranges: ${ranges}` : 'no Accept-Ranges header: interrupted downloads cannot resume',
  });
  if (head.status !== 200) return done();

  const offsets = sampleOffsets(size);
  let reader;
  try {
    reader = await store.open(sha256 as Sha256);
  } catch {
    steps.push({ name: 'sampled bytes', ok: false, detail: 'the stored package file is missing' });
    return done();
  }
  try {
    for (const start of offsets) {
      const end = Math.min(size, start + SAMPLE_BYTES) - 1;
      const name = `bytes ${start}-${end}`;
      let res: Response;
      let via = '';
      try {
        const headers = { Range: `bytes=${start}-${end}`, 'User-Agent': LINK_CHECK_USER_AGENT };
        const signal = AbortSignal.timeout(TIMEOUT_MS);
        res = await request(url, { headers, redirect: 'manual', signal });
        // Redirect mode (MIRROR_S3_DOWNLOADS=redirect) hands GETs to the object storage: follow that one hop as a Mac does.
        const location = res.status === 302 ? res.headers.get('location') : null;
        if (location !== null) {
          await res.body?.cancel().catch(() => undefined);
          const target = new URL(location, url);
          via = ` (redirected to ${target.origin})`;
          res = await request(target.href, { headers, redirect: 'manual', signal });
        }
      } catch (err) {
        steps.push({ name, ok: false, detail: describeFetchError(err, url) });
        continue;
      }
      const expectedRange = `bytes ${start}-${end}/${size}`;
      if (res.status !== 206 || res.headers.get('content-range') !== expectedRange) {
        // Do not read a body that is not the range asked for (it may be the whole package).
        await res.body?.cancel().catch(() => undefined);
        steps.push({
          name,
          ok: false,
          detail:
            `expected 206 with Content-Range ${expectedRange}, got ${res.status} ${res.headers.get('content-range') ?? ''}`.trim() +
            via,
        });
        continue;
      }
      const { bytes: body } = await readCapped(res, end - start + 1);
      const local = Buffer.allocUnsafe(end - start + 1);
      const got = await reader.read(local, local.length, start);
      const want = createHash('sha256').update(local.subarray(0, got)).digest('hex');
      const seen = createHash('sha256').update(body).digest('hex');
      steps.push({
        name,
        ok: want === seen,
        detail:
          (want === seen
            ? `sha256 of sample ${seen.slice(0, 16)}… matches`
            : `sample hashes to ${seen}, the stored package to ${want}`) + via,
      });
    }
  } finally {
    await reader.close();
  }
  return done();
}

function sampleOffsets(size: number): number[] {
  if (size === 0) return [];
  const last = Math.max(0, size - SAMPLE_BYTES);
  return [...new Set([0, Math.floor(last / 2), last])];
}

function describeFetchError(err: unknown, url: string): string {
  const cause = (err as { cause?: { code?: string } }).cause;
  const host = new URL(url).host;
  switch (cause?.code) {
    case 'ECONNREFUSED':
      return `connection refused by ${host}: is goldmirror listening there?`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `the host name in ${host} does not resolve`;
    case 'ECONNRESET':
      return `${host} closed the connection`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `${host} is unreachable from this server`;
    default:
      if ((err as Error).name === 'TimeoutError') return `no answer from ${host} within ${TIMEOUT_MS / 1000} s`;
      return `request failed: ${cause?.code ?? (err as Error).message}`;
  }
}
