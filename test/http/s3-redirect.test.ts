/**
 * Redirect mode (MIRROR_S3_DOWNLOADS=redirect) against a real goldmirror on
 * S3 (s3rver on 127.0.0.1): a GET of a link is decided as in proxy mode up to
 * the body, then answered 302 to a presigned URL that plain fetch() follows
 * to the package; HEAD, the checksum line and every refusal stay goldmirror's.
 */
import http from 'node:http';
import { DeleteObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/load.js';
import { systemActor } from '../../server/services/audit.js';
import type { DownloadLogPage } from '../../server/services/download-log.js';
import type { ImageView } from '../../server/services/images.js';
import type { LinkCheckReport } from '../../server/services/link-check.js';
import { updateSettings } from '../../server/services/settings.js';
import { formatChecksumLine, type Sha256 } from '../../storage/digest.js';
import { createKeys } from '../../storage/s3/keys.js';
import { bootstrapTestAdmin, call, issueToken, mustSignIn } from '../helpers/api.js';
import { putBlob, startMirror, testBytes, type TestMirror } from '../helpers/env.js';
import { httpRequest, type HttpReply } from '../helpers/http.js';
import { createTestBucket, startTestS3, testS3Client, type TestS3Server } from '../helpers/s3.js';

const MiB = 1024 * 1024;
const UA = 'Parallels Desktop/26.1 (Macintosh; test)';
const SIZE = 2 * MiB + 5;

function errorCode(reply: HttpReply): string {
  expect(reply.headers['content-type']).toMatch(/^application\/json/);
  return (JSON.parse(reply.body) as { error: { code: string } }).error.code;
}

/** A GET held open after its first bytes (a slow Mac), and the way to cut it. */
function holdDownload(url: string, headers: Record<string, string>): Promise<{ status: number; cut: () => void }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, headers }, (res) => {
      res.once('data', () => {
        res.pause();
        resolve({ status: res.statusCode ?? 0, cut: () => req.destroy() });
      });
      res.on('error', () => undefined);
    });
    req.on('error', reject);
  });
}

describe('redirect downloads on S3', () => {
  let s3: TestS3Server;
  let bucket: string;
  let client: S3Client;
  let m: TestMirror;
  let data: Buffer;
  let sha: string;
  const link = (digest: string, name = 'Win11-arm.pvmp') => `${m.url}/d/${digest}/${name}`;
  const s3Overrides = (extra: Record<string, unknown>) => ({
    storage: 's3',
    s3Bucket: bucket,
    s3Endpoint: s3.endpoint,
    s3Region: s3.region,
    s3ForcePathStyle: true,
    s3AccessKeyId: s3.accessKeyId,
    s3SecretAccessKey: s3.secretAccessKey,
    ...extra,
  });
  const objectKey = (mirror: TestMirror, digest: string) =>
    createKeys(mirror.runtime.config.s3Prefix).blob(digest as Sha256);

  beforeAll(async () => {
    s3 = await startTestS3();
    bucket = await createTestBucket(s3);
    client = testS3Client(s3);
    m = await startMirror(s3Overrides({ s3Downloads: 'redirect', s3Prefix: 'redirect' }));
    data = testBytes(SIZE, 'redirect');
    sha = await putBlob(m, data, 'Win11-arm.pvmp');
  });
  afterAll(async () => {
    await m?.close();
    client?.destroy();
    await s3?.close();
  });

  it('answers a GET with 302 to a presigned URL, not cacheable, that fetch() follows to the package and its name', async () => {
    const reply = await httpRequest(link(sha), { headers: { 'user-agent': UA } });
    expect(reply.status).toBe(302);
    expect(reply.bytes).toHaveLength(0);
    expect(reply.headers['content-length']).toBe('0');
    expect(reply.headers['cache-control']).toBe('no-store');
    // The validators describe the package, not this answer.
    expect(reply.headers.etag).toBeUndefined();
    expect(reply.headers['last-modified']).toBeUndefined();
    const location = new URL(reply.headers.location!);
    expect(location.origin).toBe(s3.endpoint);
    expect(location.pathname).toBe(`/${bucket}/${objectKey(m, sha)}`);
    expect(location.searchParams.get('X-Amz-Expires')).toBe('300');
    expect(location.searchParams.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/);

    const fetched = await fetch(location);
    expect(fetched.status).toBe(200);
    expect(fetched.headers.get('content-disposition')).toBe('attachment; filename="Win11-arm.pvmp"');
    expect(fetched.headers.get('content-type')).toBe('application/octet-stream');
    expect(Buffer.from(await fetched.arrayBuffer()).equals(data)).toBe(true);

    // Each GET signs afresh, with the name of its own link (RFC 8187 form for non-ASCII, as in proxy mode).
    const named = await httpRequest(link(sha, encodeURIComponent('Wïn 11 "arm".PVMP')));
    expect(named.status).toBe(302);
    const renamed = await fetch(named.headers.location!);
    expect(renamed.headers.get('content-disposition')).toBe(
      `attachment; filename="W_n 11 _arm_.PVMP"; filename*=UTF-8''W%C3%AFn%2011%20%22arm%22.PVMP`,
    );
    await renamed.body?.cancel();
  });

  it('redirects Range GETs too: the store answers the range', async () => {
    const raw = await httpRequest(link(sha), { headers: { range: 'bytes=1000-1999' } });
    expect(raw.status).toBe(302);
    expect(raw.headers['content-range']).toBeUndefined();

    const piece = await fetch(link(sha), { headers: { Range: 'bytes=1000-1999' } });
    expect(piece.redirected).toBe(true);
    expect(piece.status).toBe(206);
    expect(piece.headers.get('content-range')).toBe(`bytes 1000-1999/${SIZE}`);
    expect(Buffer.from(await piece.arrayBuffer()).equals(data.subarray(1000, 2000))).toBe(true);

    const tail = await fetch(link(sha), { headers: { Range: `bytes=${MiB}-` } });
    expect(tail.status).toBe(206);
    expect(Buffer.from(await tail.arrayBuffer()).equals(data.subarray(MiB))).toBe(true);
  });

  it('answers HEAD and the .sha256 line itself', async () => {
    const head = await httpRequest(link(sha), { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.location).toBeUndefined();
    expect(head.headers['content-length']).toBe(String(SIZE));
    expect(head.headers.etag).toBe(`"${sha}"`);
    expect(head.headers['accept-ranges']).toBe('bytes');
    expect(head.headers['content-disposition']).toBe('attachment; filename="Win11-arm.pvmp"');

    const ranged = await httpRequest(link(sha), { method: 'HEAD', headers: { range: 'bytes=0-9' } });
    expect(ranged.status).toBe(206);
    expect(ranged.headers['content-range']).toBe(`bytes 0-9/${SIZE}`);

    const line = await httpRequest(link(sha, 'Win11-arm.pvmp.sha256'));
    expect(line.status).toBe(200);
    expect(line.headers.location).toBeUndefined();
    expect(line.body).toBe(formatChecksumLine(sha as Sha256, 'Win11-arm.pvmp'));
  });

  it('decides everything before the body as in proxy mode: 304, 412, 416, 404', async () => {
    const etag = `"${sha}"`;
    const get = (headers: Record<string, string>, digest = sha, name?: string) =>
      httpRequest(link(digest, name), { headers });
    const notModified = await get({ 'if-none-match': etag });
    expect(notModified.status).toBe(304);
    expect(notModified.headers.location).toBeUndefined();
    expect((await get({ 'if-modified-since': new Date(Date.now() + 60_000).toUTCString() })).status).toBe(304);

    const failed = await get({ 'if-match': '"something else"' });
    expect(failed.status).toBe(412);
    expect(errorCode(failed)).toBe('PRECONDITION_FAILED');

    const outside = await get({ range: `bytes=${SIZE}-` });
    expect(outside.status).toBe(416);
    expect(outside.headers['content-range']).toBe(`bytes */${SIZE}`);
    expect(outside.headers.location).toBeUndefined();

    const unknown = await get({}, 'ab'.repeat(32));
    expect(unknown.status).toBe(404);
    expect(errorCode(unknown)).toBe('BLOB_UNKNOWN');
    expect((await get({}, sha, 'Invoice.exe')).status).toBe(404);

    // An If-Range that does not match here is left to the store, which knows its own validators.
    expect((await get({ 'if-range': '"stale"', range: 'bytes=0-9' })).status).toBe(302);
  });

  it('streams what the store could misjudge: If-Match, If-Unmodified-Since, several ranges', async () => {
    const etag = `"${sha}"`;
    const matched = await httpRequest(link(sha), { headers: { 'if-match': etag, range: 'bytes=5-14' } });
    expect(matched.status).toBe(206);
    expect(matched.bytes.equals(data.subarray(5, 15))).toBe(true);

    const unmodified = await httpRequest(link(sha), {
      headers: { 'if-unmodified-since': new Date(Date.now() + 60_000).toUTCString(), range: 'bytes=0-3' },
    });
    expect(unmodified.status).toBe(206);
    expect(unmodified.bytes.equals(data.subarray(0, 4))).toBe(true);

    const several = await httpRequest(link(sha), { headers: { range: 'bytes=0-9,100-109' } });
    expect(several.status).toBe(206);
    expect(several.headers['content-type']).toMatch(/^multipart\/byteranges; boundary=/);
    expect(several.bytes.includes(data.subarray(100, 110))).toBe(true);
  });

  it('withholds a package that failed its check with 503, never a redirect', async () => {
    const bad = await putBlob(m, testBytes(300 * 1024, 'redirect-bad'), 'Bad.pvmp');
    // Same size, other bytes: what bit rot in the store looks like.
    await client.send(
      new PutObjectCommand({ Bucket: bucket, Key: objectKey(m, bad), Body: testBytes(300 * 1024, 'rotten') }),
    );
    expect(await m.runtime.checker.check(bad as Sha256)).toBe('corrupt');
    const reply = await httpRequest(link(bad, 'Bad.pvmp'));
    expect(reply.status).toBe(503);
    expect(errorCode(reply)).toBe('BLOB_UNAVAILABLE');
    expect(reply.headers.location).toBeUndefined();
    expect(reply.headers['cache-control']).toBe('no-store');
  });

  it('answers 503, not a redirect to nothing, when a registered object is gone from the bucket', async () => {
    const gone = await putBlob(m, testBytes(4096, 'redirect-gone'), 'Gone.pvmp');
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: objectKey(m, gone) }));
    const reply = await httpRequest(link(gone, 'Gone.pvmp'));
    expect(reply.status).toBe(503);
    expect(errorCode(reply)).toBe('BLOB_UNAVAILABLE');
    expect(reply.headers.location).toBeUndefined();
  });

  it('logs a redirect with status 302 and no bytes sent, counts it, and counts a whole one as a download', async () => {
    const token = await issueToken(m, 'redirect-log');
    await m.runtime.activity.flush();
    await m.runtime.db.deleteFrom('download_log').execute();
    const redirectedBefore = await counterTotal(m, 'goldmirror_downloads_redirected_total');
    const startedBefore = await counterTotal(m, 'goldmirror_downloads_started_total');
    const statsBefore = await downloadsOf(m, sha);

    expect((await httpRequest(link(sha), { headers: { 'user-agent': UA } })).status).toBe(302);
    expect((await httpRequest(link(sha), { headers: { 'user-agent': UA, range: 'bytes=100-199' } })).status).toBe(302);
    await m.runtime.activity.flush();

    const page = await call<DownloadLogPage>(m.url, 'GET', '/api/v1/downloads', { token });
    expect(
      page.body.downloads.map((d) => [
        d.status,
        d.userAgent,
        d.firstByte,
        d.bytesPlanned,
        d.bytesSent,
        d.size,
        d.result,
        d.countsAsDownload,
      ]),
    ).toEqual([
      [302, UA, 100, 100, 0, SIZE, 'resumed', false],
      [302, UA, 0, SIZE, 0, SIZE, 'complete', true],
    ]);
    expect(page.body.inProgress).toEqual([]);
    expect(await counterTotal(m, 'goldmirror_downloads_redirected_total')).toBe(redirectedBefore + 2);
    // No body went through goldmirror.
    expect(await counterTotal(m, 'goldmirror_downloads_started_total')).toBe(startedBefore);
    expect(await downloadsOf(m, sha)).toBe(statsBefore + 1);

    await bootstrapTestAdmin(m);
    const session = await mustSignIn(m.url);
    const table = await call(m.url, 'GET', '/admin/downloads/live?part=finished', { session });
    expect(table.status).toBe(200);
    expect(table.text.match(/<span class="badge neutral">redirected<\/span>/g)).toHaveLength(2);
    expect(table.text).toContain('asked of the object storage');
  });

  it('does not count redirects against the download caps', async () => {
    const capped = await startMirror(
      s3Overrides({ s3Downloads: 'redirect', s3Prefix: 'capped', maxDownloads: 1, maxBytesPerSec: 256 * 1024 }),
    );
    try {
      const big = await putBlob(capped, testBytes(4 * MiB, 'redirect-capped'), 'Big.pvmp');
      const url = `${capped.url}/d/${big}/Big.pvmp`;
      // If-Match makes it a streamed download, which takes the one slot and (rate-capped) keeps it.
      const held = await holdDownload(url, { 'if-match': `"${big}"` });
      try {
        expect(held.status).toBe(200);
        const streamed = await httpRequest(url, { headers: { 'if-match': `"${big}"` } });
        expect(streamed.status).toBe(503);
        expect(errorCode(streamed)).toBe('TOO_MANY_DOWNLOADS');
        const redirected = await httpRequest(url);
        expect(redirected.status).toBe(302);
        expect((await capped.runtime.metrics.downloadSlotsUsed.get()).values[0]?.value).toBe(1);
      } finally {
        held.cut();
      }
    } finally {
      await capped.close();
    }
  });

  it('passes the link check, whose sampled ranges follow the redirect', async () => {
    await updateSettings(m.runtime, systemActor, { publicUrl: m.url });
    const token = await issueToken(m, 'redirect-check');
    const image = await call<ImageView>(m.url, 'POST', '/api/v1/images', {
      token,
      json: { name: 'Redirected', arm64: { enabled: true, sha256: sha } },
    });
    expect(image.status, image.text).toBe(201);
    const report = await call<LinkCheckReport>(m.url, 'POST', `/api/v1/images/${image.body.id}/check`, { token });
    expect(report.status).toBe(200);
    const arm = report.body.architectures.arm64!;
    expect(arm.steps.filter((s) => !s.ok)).toEqual([]);
    const samples = arm.steps.filter((s) => s.name.startsWith('bytes '));
    expect(samples).toHaveLength(3);
    for (const s of samples) expect(s.detail).toMatch(/matches \(redirected to http:\/\/127\.0\.0\.1:\d+\)$/);
  });

  it('keeps proxy mode the default: the same link streams the package with the same Content-Disposition', async () => {
    expect(loadConfig({ env: {}, overrides: { storage: 's3', s3Bucket: 'packages' } }).s3Downloads).toBe('proxy');
    const proxy = await startMirror(s3Overrides({ s3Prefix: 'proxy' }));
    try {
      const digest = await putBlob(proxy, data, 'Win11-arm.pvmp');
      expect(digest).toBe(sha);
      const reply = await httpRequest(`${proxy.url}/d/${sha}/Win11-arm.pvmp`);
      expect(reply.status).toBe(200);
      expect(reply.headers.location).toBeUndefined();
      expect(reply.headers['content-disposition']).toBe('attachment; filename="Win11-arm.pvmp"');
      expect(reply.bytes.equals(data)).toBe(true);
    } finally {
      await proxy.close();
    }
  });
});

async function counterTotal(mirror: TestMirror, name: string): Promise<number> {
  const metric = mirror.runtime.metrics.registry.getSingleMetric(name);
  const values = (await metric?.get())?.values ?? [];
  return values.reduce((n, v) => n + v.value, 0);
}

async function downloadsOf(mirror: TestMirror, sha256: string): Promise<number> {
  const row = await mirror.runtime.db
    .selectFrom('download_stats')
    .select('downloads')
    .where('sha256', '=', sha256)
    .executeTakeFirst();
  return Number(row?.downloads ?? 0);
}
