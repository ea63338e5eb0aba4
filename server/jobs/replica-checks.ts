/**
 * The primary's probes of its replicas (every MIRROR_REPLICA_CHECK_INTERVAL,
 * on the leader, and at once when a replica that is not up sends a
 * heartbeat). A probe HEADs a package the replica claims and checks status,
 * length and ETag; on its first probe and every RANGE_CHECK_EVERY-th after,
 * and while a copy is marked bad, it also reads a small random range and
 * compares it with this mirror's own bytes. A failure takes the replica out
 * at once; the next passing probe puts it back. A replica that stopped
 * sending heartbeats is marked down without a probe.
 */
import { randomInt } from 'node:crypto';
import type { BlobStore } from '../../storage/blob-store.js';
import type { Sha256 } from '../../storage/digest.js';
import { findBlobsByDigests } from '../db/repos/blobs.js';
import {
  getMirrorId,
  getReplicaRow,
  listReplicaClaims,
  listReplicaRows,
  markReplicaBlob,
  updateReplicaRow,
  type ReplicaRow,
} from '../db/repos/sites.js';
import { readCapped } from '../links.js';
import type { Logger } from '../log.js';
import type { OutboundFetch } from '../net/outbound.js';
import type { DbDeps } from '../services/deps.js';
import { replicaState } from '../services/replicas.js';
import { HOP_HEADER, MIRROR_ID_HEADER } from '../services/routing.js';

/** Every this many probes of a replica (and on its first), a range is compared byte for byte. */
export const RANGE_CHECK_EVERY = 5;
/** The compared range: small enough to cost nothing, large enough to span several disk blocks. */
export const RANGE_CHECK_BYTES = 64 * 1024;
const PROBE_TIMEOUT_MS = 10_000;
/** Replicas probed at once. */
const PROBE_CONCURRENCY = 8;

export interface ProbeDeps extends DbDeps {
  store: BlobStore;
  outbound: OutboundFetch;
  log: Logger;
  /** Aborted on shutdown: requests stop, and a probe cut short records nothing. */
  signal?: AbortSignal | undefined;
}

export interface ProbeResult {
  ok: boolean;
  detail: string;
}

/** Probes one replica now and records the verdict; returns it. */
export async function probeReplica(deps: ProbeDeps, replicaId: number): Promise<ProbeResult | null> {
  const row = await getReplicaRow(deps.db, replicaId);
  if (!row || row.enabled !== 1) return null;
  const result = await runProbe(deps, row).catch((err: unknown): ProbeResult => {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    return { ok: false, detail: `cannot be reached: ${cause?.code ?? cause?.message ?? (err as Error).message}` };
  });
  if (deps.signal?.aborted) return null;
  await record(deps, row, result);
  return result;
}

/** One round over every enabled replica (the scheduled job). */
export async function checkReplicas(deps: ProbeDeps, signal?: AbortSignal): Promise<void> {
  const rows = (await listReplicaRows(deps.db)).filter((r) => r.enabled === 1);
  const queue = [...rows];
  const worker = async (): Promise<void> => {
    for (let row = queue.shift(); row && !signal?.aborted; row = queue.shift()) {
      // Silence judged apart from the last verdict: a replica already down is not probed back up while it is silent.
      const { state, reason } = replicaState({ ...row, check_state: 'up' }, deps.clock.now());
      // Missed heartbeats take it out; only a probe after it speaks again puts it back.
      if (state === 'stale') await record(deps, row, { ok: false, detail: `missed its heartbeats (${reason})` });
      else await probeReplica({ ...deps, signal }, row.id);
    }
  };
  await Promise.all(Array.from({ length: Math.min(PROBE_CONCURRENCY, rows.length) }, worker));
}

async function record(deps: ProbeDeps, row: ReplicaRow, result: ProbeResult): Promise<void> {
  const next = result.ok ? 'up' : 'down';
  await updateReplicaRow(deps.db, row.id, {
    check_state: next,
    check_detail: result.ok ? null : result.detail,
    checked_at: deps.clock.now(),
    checks: row.checks + 1,
  });
  if (next !== row.check_state) {
    const fields = { replica: row.public_url, site: row.site, detail: result.detail };
    if (result.ok) deps.log.info(fields, 'replica passed its check: Macs of its site are sent to it again');
    else deps.log.warn(fields, 'replica failed its check: no Mac is sent to it until it passes again');
  }
}

async function runProbe(deps: ProbeDeps, row: ReplicaRow): Promise<ProbeResult> {
  const ownId = await getMirrorId(deps.db);
  const headers = { [HOP_HEADER]: ownId };
  const claims = await listReplicaClaims(deps.db, row.id);
  const held = new Map(
    (
      await findBlobsByDigests(
        deps.db,
        claims.map((c) => c.sha256),
      )
    )
      .filter((b) => b.state === 'ok')
      .map((b) => [b.sha256, { size: Number(b.size), kind: b.kind }]),
  );
  const comparable = claims.filter((c) => held.has(c.sha256));
  if (comparable.length === 0) {
    // Nothing to compare: it must at least answer as a goldmirror that is not this one.
    const res = await get(deps, `${row.public_url}/healthz`, { method: 'GET', headers });
    await res.body?.cancel().catch(() => undefined);
    if (res.headers.get(MIRROR_ID_HEADER) === ownId)
      return { ok: false, detail: `its URL ${row.public_url} leads back to this mirror` };
    if (res.status >= 300 && res.status < 400)
      return { ok: false, detail: `its /healthz answered a redirect (HTTP ${res.status})` };
    if (res.status !== 200) return { ok: false, detail: `its /healthz answered HTTP ${res.status}` };
    return { ok: true, detail: 'answers; holds no package of this mirror yet' };
  }
  // A copy marked bad is probed first: only a passing probe of it (or the replica dropping it) clears it.
  const rangeProbe = row.checks % RANGE_CHECK_EVERY === 0;
  // Range probes walk the claims by their own count: on the HEADs' walk they would meet only the claims whose
  // position is a multiple of RANGE_CHECK_EVERY modulo the count (one claim in five when a replica holds five).
  const position = rangeProbe ? row.checks / RANGE_CHECK_EVERY : row.checks;
  const claim = comparable.find((c) => c.bad === 1) ?? comparable[position % comparable.length]!;
  const sha256 = claim.sha256 as Sha256;
  const { size, kind } = held.get(sha256)!;
  // A replica serves an update file only under a .dmg name, as this mirror does.
  const url = `${row.public_url}/d/${sha256}/${sha256}.${kind === 'update' ? 'dmg' : 'pvmp'}`;
  const short = sha256.slice(0, 12);

  const head = await get(deps, url, { method: 'HEAD', headers });
  if (head.headers.get(MIRROR_ID_HEADER) === ownId)
    return { ok: false, detail: `its URL ${row.public_url} leads back to this mirror` };
  if (head.status >= 300 && head.status < 400)
    return {
      ok: false,
      detail: `answered HTTP ${head.status} (a redirect) for package ${short}: replicas must serve, not redirect`,
    };
  if (head.status !== 200) return { ok: false, detail: `answered HTTP ${head.status} for package ${short}` };
  const length = Number(head.headers.get('content-length'));
  if (length !== size) return { ok: false, detail: `sends ${length} bytes for package ${short}, not ${size}` };
  const etag = head.headers.get('etag');
  if (etag !== `"${sha256}"`) return { ok: false, detail: `answers ETag ${etag ?? '(none)'} for package ${short}` };

  if (claim.bad === 1 || rangeProbe) {
    const compared = await compareRange(deps, url, headers, sha256, size);
    if (compared) {
      await markReplicaBlob(deps.db, row.id, sha256, true);
      return { ok: false, detail: compared };
    }
    if (claim.bad === 1) await markReplicaBlob(deps.db, row.id, sha256, false);
  }
  return { ok: true, detail: `serves package ${short}` };
}

/** Reads a random range from the replica and from this mirror; returns what differs, or null when equal. */
async function compareRange(
  deps: ProbeDeps,
  url: string,
  headers: Record<string, string>,
  sha256: Sha256,
  size: number,
): Promise<string | null> {
  if (size === 0) return null;
  const length = Math.min(RANGE_CHECK_BYTES, size);
  const start = size === length ? 0 : randomInt(0, size - length + 1);
  const end = start + length - 1;
  const short = sha256.slice(0, 12);
  const res = await get(deps, url, { method: 'GET', headers: { ...headers, Range: `bytes=${start}-${end}` } });
  const { bytes } = await readCapped(res, length + 1);
  const complete = res.status === 206 || (res.status === 200 && start === 0 && length === size);
  if (!complete || bytes.length !== length)
    return `answered HTTP ${res.status} with ${bytes.length} bytes for bytes ${start}-${end} of package ${short}`;
  const own = Buffer.alloc(length);
  const reader = await deps.store.open(sha256);
  try {
    let done = 0;
    while (done < length) {
      const n = await reader.read(own.subarray(done), length - done, start + done);
      if (n === 0) break;
      done += n;
    }
  } finally {
    await reader.close();
  }
  if (!own.equals(bytes)) return `bytes ${start}-${end} of package ${short} differ from this mirror's copy`;
  return null;
}

function get(deps: ProbeDeps, url: string, init: { method: 'GET' | 'HEAD'; headers: Record<string, string> }) {
  return deps.outbound(url, {
    ...init,
    redirect: 'manual',
    idleTimeoutMs: PROBE_TIMEOUT_MS,
    signal: AbortSignal.any([...(deps.signal ? [deps.signal] : []), AbortSignal.timeout(PROBE_TIMEOUT_MS * 2)]),
  });
}
