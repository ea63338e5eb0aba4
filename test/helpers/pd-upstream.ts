/**
 * A stand-in for update.parallels.com and download.parallels.com on 127.0.0.1: it serves a realistic
 * parallels_updates.xml (built from the structure of the official feed) and .dmg files with Range, a strong
 * ETag and Last-Modified, and lets a test change either at any time, break them, or stall a transfer.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { testBytes } from './env.js';

/** Deterministic bytes that end like a UDIF disk image (the 512-byte trailer starts with "koly"). */
export function fakeDmg(size: number, seed: string): Buffer {
  const bytes = testBytes(size, seed);
  if (size >= 512) bytes.write('koly', size - 512, 'latin1');
  return bytes;
}

export const sha256Of = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

export interface FeedEntry {
  /** 26.3.3-57507 */
  version: string;
  codename?: string;
  /** FilePath; whitespace around it is kept as given (the official feed has some). */
  filePath: string;
  fileSize?: string;
  ancestors?: string[];
  /** Extra UpdateDescription locales after en_US. */
  descriptions?: string[];
  dateTime?: string;
}

/** A feed in the official layout: ParallelsUpdates → Product → ProductName, UpdateEnabled, Version → Update. */
export function feedXml(entries: FeedEntry[]): string {
  const versions = entries.map((e) => {
    const [numbers, build] = e.version.split('-') as [string, string];
    const [major, minor, subMinor] = numbers.split('.') as [string, string, string];
    const name = `Parallels Desktop ${major}.${minor}.${subMinor} (${build})`;
    const descriptions = [`en_US#${name} improves stability &amp; performance.`, ...(e.descriptions ?? [])];
    return `    <Version>
      <Major>${major}</Major>
      <Minor>${minor}</Minor>
      <SubMinor>${subMinor}</SubMinor>
      <SubSubMinor>${build}</SubSubMinor>
      <StringRepresentation>${e.codename ?? ''}</StringRepresentation>
      <Update uuid="desktop.${major}.${minor}.${subMinor}.${build}.en_US.parallels.mac">
        <UpdateType>0</UpdateType>
        <UpdateName>${name}</UpdateName>
${descriptions.map((d) => `        <UpdateDescription>${d}</UpdateDescription>`).join('\n')}
        <FilePath>${e.filePath}</FilePath>
        <FileSize>${e.fileSize ?? '0'}</FileSize>
        <Status>1</Status>
        <DateTime>${e.dateTime ?? '2026-11-02 10:15:00'}</DateTime>
        <Chargeable>0</Chargeable>
        <LocaleName>en_US</LocaleName>
        <DistributorName>Parallels</DistributorName>
        <OsType>mac</OsType>
        <Ancestry>
${(e.ancestors ?? []).map((a) => `          <Ancestor>${a}</Ancestor>`).join('\n')}
        </Ancestry>
      </Update>
    </Version>`;
  });
  return `<?xml version="1.0" encoding="UTF-8"?>
<ParallelsUpdates schemaVersion="1.0">
  <Product>
    <ProductName>Parallels Desktop</ProductName>
    <UpdateEnabled>1</UpdateEnabled>
${versions.join('\n')}
  </Product>
</ParallelsUpdates>
`;
}

export interface FakeUpstream {
  /** http://127.0.0.1:<port> */
  url: string;
  /** The feed at /desktop/v<major>/parallels/parallels_updates.xml; a number answers that HTTP status instead. */
  setFeed(major: number, body: string | number): void;
  feedUrl(major: number): string;
  /** Serves `bytes` at `path` (e.g. /desktop/v26/26.3.3-57507/ParallelsDesktop-26.3.3-57507.dmg); returns its URL. */
  setFile(path: string, bytes: Buffer, options?: { etag?: string; contentLength?: number; dropAfter?: number }): string;
  /** Requests seen, as "METHOD path range". */
  requests: string[];
  /** The same requests with the headers a resume depends on. */
  log: Array<{ method: string; path: string; range: string | null; ifRange: string | null }>;
  close(): Promise<void>;
}

interface Served {
  bytes: Buffer;
  etag: string;
  lastModified: string;
  /** A Content-Length that lies (a FileSize/length test), or undefined for the truth; the connection closes after the body. */
  contentLength?: number | undefined;
  /** Cut the connection after this many body bytes, once (a dropped transfer to resume). */
  dropAfter?: number | undefined;
}

/** On `port` when given (a test that brings a stopped upstream back at the same address), else on any free port. */
export async function startFakeUpstream(options: { port?: number } = {}): Promise<FakeUpstream> {
  const feeds = new Map<number, string | number>();
  const files = new Map<string, Served>();
  const requests: string[] = [];
  const log: FakeUpstream['log'] = [];
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    requests.push(`${req.method} ${path} ${req.headers.range ?? ''}`.trim());
    const ifRange = req.headers['if-range'] as string | undefined;
    log.push({ method: req.method ?? '', path, range: req.headers.range ?? null, ifRange: ifRange ?? null });
    const feed = /^\/desktop\/v(\d+)\/parallels\/parallels_updates\.xml$/.exec(path);
    if (feed) {
      const body = feeds.get(Number(feed[1]));
      if (body === undefined || typeof body === 'number') {
        res.writeHead(typeof body === 'number' ? body : 404).end();
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/xml', 'Content-Length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    const file = files.get(path);
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    const size = file.bytes.length;
    let start = 0;
    let end = size - 1;
    let status = 200;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (range && (ifRange === undefined || ifRange === file.etag)) {
      start = Number(range[1]);
      end = range[2] ? Math.min(Number(range[2]), size - 1) : size - 1;
      status = 206;
    }
    const headers: Record<string, string | number> = {
      'Content-Type': 'application/x-apple-diskimage',
      ETag: file.etag,
      'Last-Modified': file.lastModified,
      'Accept-Ranges': 'bytes',
      'Content-Length': status === 200 && file.contentLength !== undefined ? file.contentLength : end - start + 1,
    };
    if (status === 206) headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
    res.writeHead(status, headers);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const body = file.bytes.subarray(start, end + 1);
    if (file.dropAfter !== undefined && status === 200) {
      const cut = file.dropAfter;
      file.dropAfter = undefined;
      res.write(body.subarray(0, cut), () => res.destroy());
      return;
    }
    // A server whose Content-Length promised more ends the connection where its body ends (else the client waits).
    if (status === 200 && file.contentLength !== undefined && file.contentLength > size) {
      res.end(body, () => res.destroy());
      return;
    }
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    setFeed: (major, body) => feeds.set(major, body),
    feedUrl: (major) => `${url}/desktop/v${major}/parallels/parallels_updates.xml`,
    setFile(path, bytes, options = {}) {
      files.set(path, {
        bytes,
        etag: options.etag ?? `"${sha256Of(bytes).slice(0, 16)}"`,
        lastModified: new Date(Date.UTC(2026, 10, 2, 10, 15)).toUTCString(),
        contentLength: options.contentLength,
        dropAfter: options.dropAfter,
      });
      return `${url}${path}`;
    },
    requests,
    log,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
