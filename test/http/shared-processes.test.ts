/**
 * Two goldmirror servers on one data dir and one database, as two workers or
 * two nodes are: a tus upload started on one finishes on the other with the
 * right digest, the upload lock holds across them, and a pull started on
 * one is listed and cancelled on the other; a pull whose process died shows
 * as interrupted.
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { Upload } from '@tus/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatabaseLocker } from '../../server/http/upload-locker.js';
import { HashingFileStore, type UnfinishedUpload } from '../../server/http/uploads.js';
import type { TransferJob } from '../../server/jobs/transfers.js';
import { openDatabase } from '../../server/db/open.js';
import { setBlobState } from '../../server/db/repos/blobs.js';
import { createLogger } from '../../server/log.js';
import { openRuntime, type Runtime } from '../../server/runtime.js';
import type { BlobView } from '../../server/services/blobs.js';
import { ingest } from '../../server/services/ingest.js';
import { TRANSFER_STALE_MS } from '../../server/services/transfer-jobs.js';
import { startServer, type ServerHandle } from '../../server/serve.js';
import {
  bootstrapTestAdmin,
  call,
  expectError,
  issueToken,
  mustSignIn,
  type ApiResult,
  type CallOptions,
} from '../helpers/api.js';
import { fakeClock } from '../helpers/clock.js';
import type { Sha256 } from '../../storage/digest.js';
import { makeTempDir, sha256Hex, testBytes, testConfig, type TestMirror } from '../helpers/env.js';
import { openPatch, TUS } from '../helpers/tus.js';
import { waitFor, waitForValue } from '../helpers/wait.js';

const KiB = 1024;
const MiB = 1024 * KiB;

function tusMetadata(meta: Record<string, string>): string {
  return Object.entries(meta)
    .map(([k, v]) => `${k} ${Buffer.from(v).toString('base64')}`)
    .join(',');
}

interface Node {
  runtime: Runtime;
  server: ServerHandle;
  url: string;
}

/** Another server process on the same data dir and database (`clock`: its own idea of the time). */
async function startNode(dir: string, options: { clock?: ReturnType<typeof fakeClock> } = {}): Promise<Node> {
  const runtime = await openRuntime(testConfig(dir), createLogger('silent'), options);
  const server = await startServer(runtime);
  return { runtime, server, url: server.url };
}

async function stopNode(node: Node | undefined): Promise<void> {
  if (!node) return;
  await node.server.close(1000);
  await node.runtime.close();
}

/** An upstream that sends the first `sendBytes` of a `size`-byte package, then stalls until closed. */
async function stallingUpstream(size: number, sendBytes: number): Promise<{ url: string; close(): Promise<void> }> {
  const data = testBytes(size, 'stalling-upstream');
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(size) });
    res.write(data.subarray(0, sendBytes));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/Stalling.pvmp`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('two servers on one data dir and one database', () => {
  let dir: string;
  let a: Node;
  let b: Node;
  let token: string;
  const api = <T = unknown>(node: Node, method: string, p: string, options: CallOptions = {}): Promise<ApiResult<T>> =>
    call<T>(node.url, method, `/api/v1${p}`, { token, ...options });

  async function create(node: Node, name: string, length: number): Promise<string> {
    const res = await api(node, 'POST', '/uploads', {
      headers: { ...TUS, 'Upload-Length': String(length), 'Upload-Metadata': tusMetadata({ filename: name }) },
    });
    expect(res.status, res.text).toBe(201);
    return res.headers.get('location')!.split('/').pop()!;
  }
  function patch(node: Node, id: string, offset: number, data: Buffer): Promise<ApiResult> {
    return api(node, 'PATCH', `/uploads/${id}`, {
      raw: data,
      contentType: 'application/offset+octet-stream',
      headers: { ...TUS, 'Upload-Offset': String(offset) },
    });
  }
  const head = (node: Node, id: string): Promise<ApiResult> => api(node, 'HEAD', `/uploads/${id}`, { headers: TUS });
  const unfinished = async (node: Node, id: string): Promise<UnfinishedUpload | undefined> =>
    (await api<UnfinishedUpload[]>(node, 'GET', '/uploads')).body.find((u) => u.id === id);
  const tmpFiles = async (): Promise<string[]> => fs.readdir(a.runtime.store.layout.tmpDir);

  beforeAll(async () => {
    dir = await makeTempDir();
    a = await startNode(dir);
    b = await startNode(dir);
    // Tokens live in the database: one works on both.
    token = await issueToken({ runtime: a.runtime } as TestMirror, 'shared-processes');
    await bootstrapTestAdmin({ runtime: a.runtime, dir } as TestMirror);
  });
  afterAll(async () => {
    await stopNode(b);
    await stopNode(a);
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('a tus upload created and begun on A, continued with HEAD and PATCH on B, is stored with the digest of every byte', async () => {
    const data = testBytes(3 * MiB + 17, 'a-then-b');
    const sha = sha256Hex(data);
    const id = await create(a, 'Across.pvmp', data.length);
    expect((await patch(a, id, 0, data.subarray(0, MiB))).status).toBe(204);

    // B knows the upload (shared files and database) and where it stopped.
    const resumed = await head(b, id);
    expect(resumed.status).toBe(200);
    expect(resumed.headers.get('upload-offset')).toBe(String(MiB));
    expect(await unfinished(b, id)).toMatchObject({ name: 'Across.pvmp', offset: MiB, receiving: false });

    // B never saw the first MiB arrive: it hashes it from the file, then the rest as it comes.
    const second = await patch(b, id, MiB, data.subarray(MiB, 2 * MiB));
    expect(second.status).toBe(204);
    // Back on A, which hashed only the first MiB itself.
    const last = await patch(a, id, 2 * MiB, data.subarray(2 * MiB));
    expect(last.status, last.text).toBe(204);
    expect(last.headers.get('upload-sha256')).toBe(sha);

    // The outcome is in the database: B answers a late HEAD with the digest too.
    const late = await head(b, id);
    expect(late.status).toBe(200);
    expect(late.headers.get('upload-sha256')).toBe(sha);
    expect(late.headers.get('upload-offset')).toBe(String(data.length));
    expect((await api<BlobView>(b, 'GET', `/blobs/${sha}`)).body).toMatchObject({ size: data.length });
    const served = await fetch(`${b.url}/d/${sha}/Across.pvmp`);
    expect(sha256Hex(Buffer.from(await served.arrayBuffer()))).toBe(sha);
    expect((await fs.readdir(a.runtime.store.layout.uploadsDir)).filter((f) => f.startsWith(id))).toEqual([]);
  });

  it('an upload whose last PATCH reached B is finished there, and A answers its HEAD with the digest', async () => {
    const data = testBytes(600 * KiB, 'b-finishes');
    const sha = sha256Hex(data);
    const id = await create(a, 'Finish-on-b.pvmp', data.length);
    expect((await patch(a, id, 0, data.subarray(0, 100 * KiB))).status).toBe(204);
    const done = await patch(b, id, 100 * KiB, data.subarray(100 * KiB));
    expect(done.headers.get('upload-sha256')).toBe(sha);
    expect((await head(a, id)).headers.get('upload-sha256')).toBe(sha);
  });

  it('every byte on disk but never stored (its process died): HEADs on both servers store it once, and both answer the digest', async () => {
    const data = testBytes(400 * KiB, 'orphaned-complete');
    const sha = sha256Hex(data);
    const id = await create(a, 'Orphan.pvmp', data.length);
    await fs.writeFile(`${a.runtime.store.layout.uploadsDir}/${id}`, data);
    const first = await Promise.all([head(a, id), head(b, id)]);
    for (const res of first) expect([200, 423]).toContain(res.status);
    for (const node of [a, b]) {
      const digest = await waitForValue(async () => (await head(node, id)).headers.get('upload-sha256') ?? undefined, {
        what: 'the digest of the orphaned upload',
      });
      expect(digest).toBe(sha);
    }
    const finishes = await a.runtime.db
      .selectFrom('upload_finishes')
      .select(['state', 'sha256'])
      .where('upload_id', '=', id)
      .execute();
    expect(finishes).toEqual([{ state: 'stored', sha256: sha }]);
  });

  it('the lock holds across servers: a PATCH on B while one streams on A is refused (409) after A lets go, and nothing interleaves', async () => {
    const size = 2 * MiB;
    const data = testBytes(size, 'contended');
    const id = await create(a, 'Contended.pvmp', size);
    const { request: streaming, answered: answeredA } = openPatch(a.url, id, token, size);
    streaming.write(data.subarray(0, 64 * KiB));
    await waitFor(async () => (await unfinished(b, id))?.offset === 64 * KiB, { what: "A's first bytes on disk" });
    // B sees A's request holding the upload, and will not discard it.
    expect(await unfinished(b, id)).toMatchObject({ receiving: true });
    const session = await mustSignIn(b.url);
    const refused = await call(b.url, 'POST', `/admin/uploads/${id}/discard`, {
      session,
      csrf: null,
      raw: new URLSearchParams({ _csrf: session.csrfToken }).toString(),
      contentType: 'application/x-www-form-urlencoded',
    });
    expect(refused.status).toBe(409);
    expect(refused.text).toContain('Contended.pvmp is receiving data right now');

    // A PATCH on B at the same offset waits for the lock, asks A to let go, then finds the offset moved on.
    const contender = await patch(b, id, 0, data);
    expect(contender.status, contender.text).toBe(409);
    expect([204, -1]).toContain(await answeredA);
    streaming.destroy();
    const after = await waitForValue(async () => {
      const u = await unfinished(a, id);
      return u && !u.receiving ? u : undefined;
    });
    expect(after.offset).toBe(64 * KiB);
    const onDisk = await fs.readFile(`${a.runtime.store.layout.uploadsDir}/${id}`);
    expect(onDisk.equals(data.subarray(0, 64 * KiB))).toBe(true);

    // The right offset continues on B, and the digest covers A's bytes and B's.
    const rest = await patch(b, id, 64 * KiB, data.subarray(64 * KiB));
    expect(rest.status, rest.text).toBe(204);
    expect(rest.headers.get('upload-sha256')).toBe(sha256Hex(data));
  });

  it('a package withheld by B is refused by A within about a second (A caches servable rows for a second only)', async () => {
    const sha = (await ingest(b.runtime.ingestDeps, { source: [testBytes(64 * KiB, 'withheld')], fileName: 'W.pvmp' }))
      .blob.sha256 as Sha256;
    const link = `${a.url}/d/${sha}/W.pvmp`;
    expect((await fetch(link, { method: 'HEAD' })).status).toBe(200); // now in A's row cache
    // What B's checker records for a corrupt package (the file itself is left in place here).
    await setBlobState(b.runtime.db, sha, 'corrupt', { verifiedAtMs: Date.now(), detail: 'found corrupt by B' });
    const since = performance.now();
    await waitFor(async () => (await fetch(link, { method: 'HEAD' })).status === 503, {
      what: 'A to refuse the package',
      intervalMs: 50,
    });
    expect(performance.now() - since).toBeLessThan(2500);
  });

  it('a pull started on A is listed on B with its progress, and B cancels it: A stops, keeps nothing, both say cancelled', async () => {
    const upstream = await stallingUpstream(8 * MiB, 2 * MiB);
    try {
      const started = await api<TransferJob>(a, 'POST', '/fetch', { json: { url: upstream.url } });
      expect(started.status, started.text).toBe(202);
      const id = started.body.id;
      const seen = await waitForValue(
        async () => {
          const job = (await api<TransferJob[]>(b, 'GET', '/fetch')).body.find((j) => j.id === id);
          return job && job.bytesDone >= 2 * MiB ? job : undefined;
        },
        { what: "A's progress, as B reads it" },
      );
      expect(seen).toMatchObject({ url: upstream.url, state: 'running', totalBytes: 8 * MiB });
      expect(await tmpFiles()).toHaveLength(1);
      const page = await call(b.url, 'GET', '/admin/upload', { token });
      expect(page.text).toContain(upstream.url);

      expect((await api(b, 'DELETE', `/fetch/${id}`)).status).toBe(204);
      expect(await a.runtime.transfers.wait(id)).toMatchObject({ state: 'cancelled' });
      expect(await b.runtime.transfers.wait(id)).toMatchObject({ state: 'cancelled' });
      expect((await api<TransferJob>(b, 'GET', `/fetch/${id}`)).body.state).toBe('cancelled');
      expect(await tmpFiles()).toEqual([]);
      expectError(await api(b, 'DELETE', `/fetch/${id}`), 404, 'NOT_FOUND');
    } finally {
      await upstream.close();
    }
  });

  it('a queued pull is cancelled at once from the other server', async () => {
    const upstream = await stallingUpstream(4 * MiB, MiB);
    const dirQ = await makeTempDir();
    // One slot, so the second pull waits in A's queue.
    const runtime = await openRuntime(testConfig(dirQ, { fetchConcurrency: 1 }), createLogger('silent'));
    const server = await startServer(runtime);
    const q: Node = { runtime, server, url: server.url };
    const other = await startNode(dirQ);
    const qToken = await issueToken({ runtime } as TestMirror, 'queue');
    try {
      const post = (node: Node) =>
        call<TransferJob>(node.url, 'POST', '/api/v1/fetch', { token: qToken, json: { url: upstream.url } });
      const running = (await post(q)).body;
      const queued = (await post(q)).body;
      expect([running.state, queued.state]).toEqual(['running', 'queued']);
      const cancel = await call(other.url, 'DELETE', `/api/v1/fetch/${queued.id}`, { token: qToken });
      expect(cancel.status).toBe(204);
      // Ended by the cancel itself, not by A's next heartbeat.
      expect((await other.runtime.transfers.get(queued.id))?.state).toBe('cancelled');
      expect(await runtime.transfers.wait(queued.id)).toMatchObject({ state: 'cancelled', bytesDone: 0 });
      expect((await call(other.url, 'DELETE', `/api/v1/fetch/${running.id}`, { token: qToken })).status).toBe(204);
      expect(await runtime.transfers.wait(running.id)).toMatchObject({ state: 'cancelled' });
    } finally {
      await stopNode(other);
      await stopNode(q);
      await upstream.close();
      await fs.rm(dirQ, { recursive: true, force: true });
    }
  });

  it('a pull whose process died (no heartbeat) is shown as interrupted, not running forever', async () => {
    // What a process killed in the middle of a pull leaves behind.
    const id = 'job-of-a-dead-process';
    const long = Date.now() - TRANSFER_STALE_MS - 5000;
    await a.runtime.db
      .insertInto('transfer_jobs')
      .values({
        id,
        source_url: 'http://127.0.0.1:9/Gone.pvmp',
        state: 'running',
        bytes_done: 5 * MiB,
        total_bytes: 8 * MiB,
        holder: 'other-host/4242/0123456789ab',
        created_at: long - 60_000,
        updated_at: long,
      })
      .execute();
    const job = (await api<TransferJob>(b, 'GET', `/fetch/${id}`)).body;
    expect(job).toMatchObject({
      state: 'failed',
      bytesDone: 5 * MiB,
      error: { code: 'TRANSFER_INTERRUPTED', message: expect.stringContaining('stopped') as string },
    });
    expect(job.finishedAt).not.toBeNull();
    expect((await api<TransferJob[]>(a, 'GET', '/fetch')).body.find((j) => j.id === id)?.state).toBe('failed');
    expectError(await api(a, 'DELETE', `/fetch/${id}`), 404, 'NOT_FOUND');
  });

  it('a process that finds its pull taken for interrupted (its clock or heartbeat far behind) stops it', async () => {
    const upstream = await stallingUpstream(4 * MiB, MiB);
    // A third server whose clock runs a minute ahead sees A's heartbeats as a minute old.
    const ahead = await startNode(dir, { clock: fakeClock(Date.now() + 60_000) });
    try {
      const started = await api<TransferJob>(a, 'POST', '/fetch', { json: { url: upstream.url } });
      const id = started.body.id;
      await waitFor(async () => ((await a.runtime.transfers.get(id))?.bytesDone ?? 0) >= MiB);
      expect((await api<TransferJob>(ahead, 'GET', `/fetch/${id}`)).body).toMatchObject({
        state: 'failed',
        error: { code: 'TRANSFER_INTERRUPTED' },
      });
      // A's next heartbeat finds the job no longer its own and stops it, leaving no temp file.
      expect(await a.runtime.transfers.wait(id)).toMatchObject({ state: 'failed' });
      await waitFor(async () => (await tmpFiles()).length === 0, { what: "A's temp file to go" });
    } finally {
      await stopNode(ahead);
      await upstream.close();
    }
  });
});

describe('the hash of one upload written by two processes', () => {
  const data = testBytes(400 * KiB, 'two-writers');
  const sha = sha256Hex(data);
  let dirH: string;
  beforeAll(async () => {
    dirH = await makeTempDir();
  });
  afterAll(async () => {
    await fs.rm(dirH, { recursive: true, force: true });
  });

  /** One process's tus store over the shared upload directory (free space and lock always fine here). */
  const storeOf = (catchUpMaxBytes?: number): HashingFileStore =>
    new HashingFileStore(
      { directory: dirH },
      () => Promise.resolve(),
      () => Promise.resolve(Number.POSITIVE_INFINITY),
      () => true,
      catchUpMaxBytes,
    );
  async function newUpload(store: HashingFileStore, id: string): Promise<void> {
    await store.create(new Upload({ id, size: data.length, offset: 0, metadata: { filename: 'Two.pvmp' } }));
  }
  const write = (store: HashingFileStore, id: string, from: number, to: number): Promise<number> =>
    store.write(Readable.from([data.subarray(from, to)]), id, from);

  it('each process hashes the bytes the other received from the file, so either gives the digest of every byte', async () => {
    const [a, b] = [storeOf(), storeOf()];
    await newUpload(a, 'alternating');
    expect(await write(a, 'alternating', 0, 100 * KiB)).toBe(100 * KiB);
    expect(await write(b, 'alternating', 100 * KiB, 300 * KiB)).toBe(300 * KiB);
    expect(await write(a, 'alternating', 300 * KiB, data.length)).toBe(data.length);
    // A caught up on B's bytes before its last PATCH; B reads A's last bytes from the file when asked.
    expect(b.running.get('alternating')?.offset).toBe(300 * KiB);
    expect(await a.takeDigest('alternating', data.length)).toBe(sha);
    expect(await b.takeDigest('alternating', data.length)).toBe(sha);
  });

  it('a gap larger than the catch-up limit is left for the end, where the rest is read once', async () => {
    const [a, b] = [storeOf(50 * KiB), storeOf(50 * KiB)];
    await newUpload(a, 'gapped');
    await write(a, 'gapped', 0, 100 * KiB);
    await write(b, 'gapped', 100 * KiB, 300 * KiB);
    // B saw none of the first 100 KiB arrive and did not read them up front: it has no hash state.
    expect(b.running.has('gapped')).toBe(false);
    await write(a, 'gapped', 300 * KiB, data.length);
    // A kept its state at 100 KiB rather than hashing B's 200 KiB before the PATCH.
    expect(a.running.get('gapped')?.offset).toBe(100 * KiB);
    expect(await a.takeDigest('gapped', data.length)).toBe(sha);
    // Without a state the ingest hashes the whole file itself.
    expect(await b.takeDigest('gapped', data.length)).toBeUndefined();
  });

  it('a digest is never taken from a state ahead of the file (an upload begun again under the same id)', async () => {
    const a = storeOf();
    await newUpload(a, 'restarted');
    await write(a, 'restarted', 0, 200 * KiB);
    expect(await a.takeDigest('restarted', 100 * KiB)).toBeUndefined();
  });
});

describe('the upload lock in the database', () => {
  let dirL: string;
  let runtime: Runtime;
  beforeAll(async () => {
    dirL = await makeTempDir();
    runtime = await openRuntime(testConfig(dirL), createLogger('silent'));
  });
  afterAll(async () => {
    await runtime?.close();
    await fs.rm(dirL, { recursive: true, force: true });
  });
  const lockerOf = (clock = runtime.clock): DatabaseLocker =>
    new DatabaseLocker({ db: runtime.db, clock, log: runtime.log });

  it('is held by one process at a time; a waiter asks the holder to let go, and gets it once the holder does', async () => {
    const [a, b] = [lockerOf(), lockerOf()];
    const held = a.newLock('upload-1');
    let askedToRelease = 0;
    await held.lock(new AbortController().signal, () => {
      askedToRelease += 1;
    });
    expect(a.holds('upload-1')).toBe(true);
    expect(b.holds('upload-1')).toBe(false);
    expect(await b.tryLock('upload-1')).toBeNull();

    const waiting = b.newLock('upload-1');
    const taken = waiting.lock(new AbortController().signal, () => undefined);
    // The holder notices the request at its next renewal (once a second).
    await waitFor(() => askedToRelease === 1, { what: 'the holder to be asked to let go' });
    await held.unlock();
    await taken;
    expect(a.holds('upload-1')).toBe(false);
    expect(b.holds('upload-1')).toBe(true);
    await waiting.unlock();
    expect(await a.tryLock('upload-1')).not.toBeNull();
  });

  it('answers 503 in its own words when the database does not answer', async () => {
    const db = await openDatabase({ file: `${dirL}/other.db` });
    await db.destroy();
    const locker = new DatabaseLocker({ db, clock: runtime.clock, log: runtime.log });
    const answer = await locker
      .newLock('upload-3')
      .lock(new AbortController().signal, () => undefined)
      .then(
        () => null,
        (err: { status_code: number; body: string }) => err,
      );
    expect(answer?.status_code).toBe(503);
    expect(JSON.parse(answer!.body)).toMatchObject({ error: { code: 'DATABASE_UNAVAILABLE' } });
  });

  it('of a holder that stopped renewing is taken over after it expires, and the old holder stops writing', async () => {
    const a = lockerOf();
    const old = a.newLock('upload-2');
    let released = false;
    await old.lock(new AbortController().signal, () => {
      released = true;
    });
    // A process whose clock is 20 s later sees the lock as expired, as everyone will once A stops renewing.
    const later = lockerOf(fakeClock(Date.now() + 20_000));
    const taken = await later.tryLock('upload-2');
    expect(taken).not.toBeNull();
    // A's next renewal finds the row taken: its request is ended, and its writes no longer pass.
    await waitFor(() => released, { what: 'A to learn that it lost the lock' });
    expect(a.holds('upload-2')).toBe(false);
    expect(later.holds('upload-2')).toBe(true);
    await old.unlock();
    // A's release does not free the new holder's lock.
    expect(await lockerOf().tryLock('upload-2')).toBeNull();
    await taken!.unlock();
  });
});
