/**
 * Pulling packages from an upstream URL (library, API job, CLI) against a real
 * node:http server that drops connections, honours or ignores Range, and
 * serves shasum-style checksum files; and mirror-to-mirror sync between two
 * real goldmirrors on ephemeral ports (library and CLI).
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchIntoStore } from '../../server/bundles/fetch.js';
import { MAX_MANIFEST_BYTES, syncFrom } from '../../server/bundles/sync.js';
import { createLogger } from '../../server/log.js';
import { openRuntime } from '../../server/runtime.js';
import type { TransferJob } from '../../server/jobs/transfers.js';
import { downloadUrl } from '../../server/links.js';
import { cliActor } from '../../server/services/audit.js';
import { createApiToken } from '../../server/services/auth.js';
import { createGroup } from '../../server/services/groups.js';
import { createImage } from '../../server/services/images.js';
import type { Sha256 } from '../../storage/digest.js';
import { runCli } from '../helpers/cli.js';
import { storedDigest } from '../helpers/blobs.js';
import { makeTempDir, startMirror, testBytes, testConfig, type TestMirror } from '../helpers/env.js';
import { waitFor, waitForValue } from '../helpers/wait.js';
import {
  cliEnv,
  containing,
  logical,
  matching,
  openLocal,
  seed,
  sha256Hex,
  snapshot,
  store,
  type LocalMirror,
  type Seed,
} from './helpers.js';

const MiB = 1024 * 1024;

interface SeenRequest {
  method: string;
  url: string;
  range: string | undefined;
  ifRange: string | undefined;
}

interface Upstream {
  url: string;
  seen: SeenRequest[];
  close(): Promise<void>;
}

interface UpstreamOptions {
  /** Drop (socket.destroy) this many of the first body responses, after `dropAfter` bytes each. */
  drops?: number;
  dropAfter?: number;
  /** Answer Range requests with 206; when false, always 200 with the whole file. */
  honorRange?: boolean;
  etag?: string | null;
  lastModified?: string;
  /** Send this many bytes of the body, then stall (never end) until the server closes. */
  stallAfter?: number;
  /** Extra small text files by path (checksum files). */
  texts?: Record<string, string>;
}

/** A small HTTP server on 127.0.0.1:<ephemeral> serving `data` at /file.pvmp. */
async function startUpstream(data: Buffer, options: UpstreamOptions = {}): Promise<Upstream> {
  const etag = options.etag === undefined ? `"${sha256Hex(data).slice(0, 16)}"` : options.etag;
  let drops = options.drops ?? 0;
  const seen: SeenRequest[] = [];
  const server = http.createServer((req, res) => {
    seen.push({
      method: req.method ?? '',
      url: req.url ?? '',
      range: req.headers.range,
      ifRange: req.headers['if-range'] as string | undefined,
    });
    const text = options.texts?.[req.url ?? ''];
    if (text !== undefined) {
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end(text);
      return;
    }
    if (req.url !== '/file.pvmp') {
      res.writeHead(404).end('not found');
      return;
    }
    const headers: Record<string, string> = {
      'Accept-Ranges': 'bytes',
      'Content-Type': 'application/octet-stream',
    };
    if (etag) headers.ETag = etag;
    if (options.lastModified) headers['Last-Modified'] = options.lastModified;
    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const validatorOk =
      req.headers['if-range'] === undefined || req.headers['if-range'] === (etag ?? options.lastModified);
    if ((options.honorRange ?? true) && range && validatorOk) {
      start = Number(range[1]);
      res.writeHead(206, {
        ...headers,
        'Content-Length': String(data.length - start),
        'Content-Range': `bytes ${start}-${data.length - 1}/${data.length}`,
      });
    } else {
      res.writeHead(200, { ...headers, 'Content-Length': String(data.length) });
    }
    const body = data.subarray(start);
    if (options.stallAfter !== undefined) {
      res.write(body.subarray(0, options.stallAfter));
      return;
    }
    if (drops > 0) {
      drops -= 1;
      const n = Math.min(options.dropAfter ?? MiB, body.length - 1);
      res.write(body.subarray(0, n), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const fast = { retryDelayMs: 5, maxRetries: 3 };

describe('fetch from an upstream URL', () => {
  const data = testBytes(8 * MiB + 4_321, 'upstream');
  const digest = sha256Hex(data);
  let T: LocalMirror;
  beforeAll(async () => {
    T = await openLocal();
  });
  afterAll(async () => {
    await T?.close();
  });

  async function forget(sha: string): Promise<void> {
    await T.runtime.db.deleteFrom('blobs').where('sha256', '=', sha).execute();
    await (await T.runtime.store.detach(sha as Sha256))?.discard();
  }

  it('resumes a dropped download with Range + If-Range and stores the right digest', async () => {
    const up = await startUpstream(data, { drops: 1, dropAfter: 3 * MiB + 17 });
    try {
      const progress: number[] = [];
      const { blob, created } = await fetchIntoStore(T.runtime.ingestDeps, `${up.url}/file.pvmp`, {
        ...fast,
        expectedSha256: digest as Sha256,
        onProgress: (done) => progress.push(done),
      });
      expect(created).toBe(true);
      expect(blob).toMatchObject({
        sha256: digest,
        size: data.length,
        name: 'file.pvmp',
        state: 'ok',
      });
      expect(await storedDigest(T, digest)).toBe(digest);
      expect(up.seen).toHaveLength(2);
      expect(up.seen[0]!.range).toBeUndefined();
      const resumedAt = Number(/^bytes=(\d+)-$/.exec(up.seen[1]!.range ?? '')?.[1]);
      expect(resumedAt).toBeGreaterThan(0);
      expect(resumedAt).toBeLessThanOrEqual(3 * MiB + 17);
      expect(up.seen[1]!.ifRange).toBe(`"${digest.slice(0, 16)}"`);
      expect(progress.at(-1)).toBe(data.length);
      expect(((await snapshot(T)) as { tmpFiles: object }).tmpFiles).toEqual({});
    } finally {
      await up.close();
      await forget(digest);
    }
  });

  it('survives a drop on every answer (each resume makes progress), pinning Last-Modified when there is no ETag', async () => {
    const lastModified = 'Tue, 01 Oct 2024 10:00:00 GMT';
    const up = await startUpstream(data, {
      drops: 4,
      dropAfter: MiB + 1,
      etag: null,
      lastModified,
    });
    try {
      const { blob } = await fetchIntoStore(T.runtime.ingestDeps, `${up.url}/file.pvmp`, {
        ...fast,
        expectedSha256: digest as Sha256,
      });
      expect(blob.sha256).toBe(digest);
      expect(up.seen).toHaveLength(5);
      expect(up.seen.slice(1).every((r) => r.ifRange === lastModified && /^bytes=\d+-$/.test(r.range ?? ''))).toBe(
        true,
      );
      const starts = up.seen.slice(1).map((r) => Number(r.range!.slice(6, -1)));
      expect([...starts].sort((a, b) => a - b)).toEqual(starts); // strictly moving forward
      expect(new Set(starts).size).toBe(starts.length);
    } finally {
      await up.close();
      await forget(digest);
    }
  });

  it('an upstream that ignores Range after a drop fails cleanly with SOURCE_FAILED and stores nothing', async () => {
    const up = await startUpstream(data, {
      drops: 1,
      dropAfter: 2 * MiB,
      honorRange: false,
    });
    try {
      const before = await snapshot(T);
      await expect(
        fetchIntoStore(T.runtime.ingestDeps, `${up.url}/file.pvmp`, {
          ...fast,
          expectedSha256: digest as Sha256,
        }),
      ).rejects.toMatchObject({
        code: 'SOURCE_FAILED',
        message: matching(/cannot resume .*nothing was stored/),
      });
      expect(up.seen).toHaveLength(2);
      expect(up.seen[1]!.range).toMatch(/^bytes=\d+-$/);
      expect(await snapshot(T)).toEqual(before);
    } finally {
      await up.close();
    }
  });

  it('--checksum-url: takes the digest from a shasum-style text file', async () => {
    const up = await startUpstream(data, {
      texts: {
        '/file.pvmp.sha256': `\uFEFF${digest.toUpperCase()}  file.pvmp\r\n`,
      },
    });
    try {
      const { blob } = await fetchIntoStore(T.runtime.ingestDeps, `${up.url}/file.pvmp`, {
        ...fast,
        checksumUrl: `${up.url}/file.pvmp.sha256`,
      });
      expect(blob.sha256).toBe(digest);
      expect(up.seen.map((r) => r.url)).toEqual(['/file.pvmp.sha256', '/file.pvmp']);
    } finally {
      await up.close();
      await forget(digest);
    }
  });

  it('a digest mismatch (given or from the checksum file) stores nothing; a checksum file without a digest is refused', async () => {
    const wrong = sha256Hex(Buffer.from('something else'));
    const up = await startUpstream(data, {
      texts: {
        '/wrong.sha256': `${wrong}  file.pvmp\n`,
        '/empty.sha256': 'no digest here\n',
      },
    });
    try {
      const before = await snapshot(T);
      await expect(
        fetchIntoStore(T.runtime.ingestDeps, `${up.url}/file.pvmp`, {
          ...fast,
          expectedSha256: wrong as Sha256,
        }),
      ).rejects.toMatchObject({
        code: 'DIGEST_MISMATCH',
        message: containing(digest),
      });
      await expect(
        fetchIntoStore(T.runtime.ingestDeps, `${up.url}/file.pvmp`, {
          ...fast,
          checksumUrl: `${up.url}/wrong.sha256`,
        }),
      ).rejects.toMatchObject({
        code: 'DIGEST_MISMATCH',
      });
      await expect(
        fetchIntoStore(T.runtime.ingestDeps, `${up.url}/file.pvmp`, {
          ...fast,
          checksumUrl: `${up.url}/empty.sha256`,
        }),
      ).rejects.toMatchObject({
        code: 'CHECKSUM_FILE_INVALID',
      });
      expect(await snapshot(T)).toEqual(before);
    } finally {
      await up.close();
    }
  });

  it('HTTP errors, unreachable hosts and bad URLs fail with clear codes', async () => {
    const up = await startUpstream(data);
    const closed = await startUpstream(data);
    await closed.close(); // its port now refuses connections
    try {
      const before = await snapshot(T);
      await expect(fetchIntoStore(T.runtime.ingestDeps, `${up.url}/missing.pvmp`, fast)).rejects.toMatchObject({
        code: 'SOURCE_FAILED',
        message: matching(/HTTP 404/),
      });
      await expect(fetchIntoStore(T.runtime.ingestDeps, `${closed.url}/file.pvmp`, fast)).rejects.toMatchObject({
        code: 'SOURCE_FAILED',
        message: matching(/ECONNREFUSED/),
      });
      await expect(fetchIntoStore(T.runtime.ingestDeps, 'ftp://example.com/x.pvmp', fast)).rejects.toMatchObject({
        code: 'VALIDATION_FAILED',
      });
      expect(await snapshot(T)).toEqual(before);
    } finally {
      await up.close();
    }
  });
});

describe('fetch as an API job and from the CLI', () => {
  const data = testBytes(8 * MiB + 99, 'job');
  const digest = sha256Hex(data);
  let M: TestMirror;
  let auth: Record<string, string>;
  let up: Upstream;
  beforeAll(async () => {
    M = await startMirror();
    auth = {
      Authorization: `Bearer ${(await createApiToken(M.runtime, cliActor, 'fetcher')).token}`,
    };
    up = await startUpstream(data);
  });
  afterAll(async () => {
    await up?.close();
    await M?.close();
  });

  async function runJob(body: unknown): Promise<TransferJob> {
    const res = await fetch(`${M.url}/api/v1/fetch`, {
      method: 'POST',
      headers: { ...auth, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(res.status).toBe(202);
    let job = (await res.json()) as TransferJob;
    expect(job.state).toBe('running');
    return waitForValue(
      async () => {
        if (job.state !== 'running') return job;
        const poll = await fetch(`${M.url}/api/v1/fetch/${job.id}`, {
          headers: auth,
        });
        expect(poll.status).toBe(200);
        job = (await poll.json()) as TransferJob;
        return undefined;
      },
      { what: 'the fetch job to finish', timeoutMs: 30_000, intervalMs: 50 },
    );
  }

  it('POST /api/v1/fetch → poll GET /api/v1/fetch/:id until done → the package is stored and served', async () => {
    const job = await runJob({ url: `${up.url}/file.pvmp`, sha256: digest });
    expect(job).toMatchObject({
      state: 'done',
      sha256: digest,
      bytesDone: data.length,
      totalBytes: data.length,
      error: null,
    });
    expect(job.finishedAt).not.toBeNull();
    const blob = await fetch(`${M.url}/api/v1/blobs/${digest}`, {
      headers: auth,
    });
    expect(blob.status).toBe(200);
    expect(await blob.json()).toMatchObject({
      sha256: digest,
      size: data.length,
    });
    const dl = await fetch(downloadUrl(M.url, digest, 'file.pvmp'));
    expect(sha256Hex(Buffer.from(await dl.arrayBuffer()))).toBe(digest);
    const list = (await (await fetch(`${M.url}/api/v1/fetch`, { headers: auth })).json()) as TransferJob[];
    expect(list.map((j) => j.id)).toContain(job.id);
  });

  it('a job with the wrong digest ends failed with DIGEST_MISMATCH and stores nothing; unknown ids are 404', async () => {
    const before = await snapshot(M);
    const job = await runJob({
      url: `${up.url}/file.pvmp`,
      sha256: sha256Hex(Buffer.from('nope')),
    });
    expect(job.state).toBe('failed');
    expect(job.error?.code).toBe('DIGEST_MISMATCH');
    expect(await snapshot(M)).toEqual(before);
    expect((await fetch(`${M.url}/api/v1/fetch/not-a-job`, { headers: auth })).status).toBe(404);
    const bad = await fetch(`${M.url}/api/v1/fetch`, {
      method: 'POST',
      headers: { ...auth, 'Content-Type': 'application/json' },
      body: JSON.stringify({ url: 'not a url' }),
    });
    expect(bad.status).toBe(400);
    const anon = await fetch(`${M.url}/api/v1/fetch`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ url: `${up.url}/file.pvmp` }),
    });
    expect(anon.status).toBe(401);
  });

  it('DELETE /api/v1/fetch/:id cancels a running job: state cancelled, no package, no temp file', async () => {
    // Past the first 8 MiB: on S3 the bytes before that wait in memory, after them a multipart upload and its marker exist.
    const stallAfter = 8 * MiB + 50;
    const stalling = await startUpstream(data, { stallAfter });
    try {
      const before = await snapshot(M);
      const res = await fetch(`${M.url}/api/v1/fetch`, {
        method: 'POST',
        headers: { ...auth, 'Content-Type': 'application/json' },
        body: JSON.stringify({ url: `${stalling.url}/file.pvmp`, sha256: digest }),
      });
      const job = (await res.json()) as TransferJob;
      // Wait until bytes are flowing (and a temp file exists), then cancel.
      for (let i = 0; (await M.runtime.transfers.get(job.id))!.bytesDone < 8 * MiB; i++) {
        if (i > 400) throw new Error('the stalled download never reached 8 MiB');
        await new Promise((r) => setTimeout(r, 25));
      }
      // On S3 the first part goes out after its bytes came in: the marker appears a moment later.
      const tmpEntries = async () => Object.keys(((await snapshot(M)) as { tmpFiles: object }).tmpFiles).length;
      await waitFor(async () => (await tmpEntries()) > 0);
      expect(await tmpEntries()).toBe(1);
      const del = await fetch(`${M.url}/api/v1/fetch/${job.id}`, { method: 'DELETE', headers: auth });
      expect(del.status).toBe(204);
      const ended = await M.runtime.transfers.wait(job.id);
      expect(ended?.state).toBe('cancelled');
      expect(await snapshot(M)).toEqual(before);
      const again = await fetch(`${M.url}/api/v1/fetch/${job.id}`, { method: 'DELETE', headers: auth });
      expect(again.status).toBe(404); // no longer running
    } finally {
      await stalling.close();
    }
  });

  it('CLI: goldmirror fetch URL --sha256 HEX resumes after a drop and stores the package', async () => {
    const dropping = await startUpstream(data, {
      drops: 1,
      dropAfter: 2 * MiB,
    });
    const dir = await makeTempDir();
    try {
      const res = await runCli(['fetch', `${dropping.url}/file.pvmp`, '--sha256', digest, '--json'], cliEnv(dir));
      expect(res.stderr).toBe('');
      expect(res.code).toBe(0);
      expect(JSON.parse(res.stdout)).toEqual({
        sha256: digest,
        size: data.length,
        name: 'file.pvmp',
        created: true,
        url: `http://mirror.test/d/${digest}/file.pvmp`,
      });
      expect(dropping.seen).toHaveLength(2);
      expect(dropping.seen[1]!.ifRange).toBe(`"${digest.slice(0, 16)}"`);
      const L = await openLocal(dir);
      try {
        expect(await storedDigest(L, digest)).toBe(digest);
      } finally {
        await L.close();
      }
      const wrong = await runCli(
        ['fetch', `${up.url}/file.pvmp`, '--sha256', sha256Hex(Buffer.from('x'))],
        cliEnv(path.join(dir, 'other')),
      );
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toMatch(/nothing was stored/);
    } finally {
      await dropping.close();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('sync between two mirrors', () => {
  let A: TestMirror;
  let seedA: Seed;
  let token: string;
  beforeAll(async () => {
    A = await startMirror();
    seedA = await seed(A, 'sync');
    token = (await createApiToken(A.runtime, cliActor, 'branch-office')).token;
  });
  afterAll(async () => {
    await A?.close();
  });

  const downloadsStarted = async (): Promise<number> =>
    (await A.runtime.metrics.downloadsStarted.get()).values.reduce((n, v) => n + v.value, 0);

  /** A adds an image with a new package and a group for it. */
  async function addSecondImage(tag: string): Promise<string> {
    const data = testBytes(300_001, tag);
    const sha = await store(A, data, `${tag}.pvmp`);
    seedA.bytes.set(sha, data);
    const image = await createImage(
      A.runtime,
      cliActor,
      { name: `New ${tag}`, arm64: { enabled: true, sha256: sha } },
      'http://x',
    );
    await createGroup(A.runtime, cliActor, {
      name: `Team ${tag}`,
      licenseKey: `KEY-${tag}`,
      imageId: image.id,
    });
    return sha;
  }

  it('library: syncFrom copies everything; a re-run changes and downloads nothing; a new image upstream is picked up', async () => {
    const B = await startMirror();
    try {
      const first = await syncFrom(B.runtime.ingestDeps, {
        from: `${A.url}/`,
        token,
        actor: cliActor,
      });
      expect(first.from).toBe(A.url);
      expect([...first.fetched].sort()).toEqual([...seedA.bytes.keys()].sort());
      expect(first.import.images.created).toHaveLength(3);
      expect(await logical(B.runtime.db)).toEqual(await logical(A.runtime.db));
      for (const [sha, bytes] of seedA.bytes) {
        const row = await B.runtime.db
          .selectFrom('blobs')
          .select('name')
          .where('sha256', '=', sha)
          .executeTakeFirstOrThrow();
        const res = await fetch(downloadUrl(B.url, sha, row.name));
        expect(sha256Hex(Buffer.from(await res.arrayBuffer()))).toBe(sha);
        expect(res.headers.get('content-length')).toBe(String(bytes.length));
      }

      const snap = await snapshot(B);
      const downloads = await downloadsStarted();
      const again = await syncFrom(B.runtime.ingestDeps, {
        from: A.url,
        token,
        actor: cliActor,
      });
      expect(again.fetched).toEqual([]);
      expect(again.import.images).toMatchObject({ created: [], updated: [] });
      expect(again.import.groups).toMatchObject({ created: [], updated: [] });
      expect(await snapshot(B)).toEqual(snap);
      expect(await downloadsStarted()).toBe(downloads);

      const added = await addSecondImage('lib');
      const third = await syncFrom(B.runtime.ingestDeps, {
        from: A.url,
        token,
        actor: cliActor,
      });
      expect(third.fetched).toEqual([added]);
      expect(third.import.images.created).toEqual(['New lib']);
      expect(third.import.groups.created).toEqual(['Team lib']);
      expect(third.import.images.unchanged).toHaveLength(3);
      expect(await logical(B.runtime.db)).toEqual(await logical(A.runtime.db));
    } finally {
      await B.close();
    }
  });

  it('a wrong token or an unreachable source is a clear SOURCE_FAILED and changes nothing', async () => {
    const B = await openLocal();
    try {
      const before = await snapshot(B);
      await expect(
        syncFrom(B.runtime.ingestDeps, {
          from: A.url,
          token: 'gm_wrong',
          actor: cliActor,
        }),
      ).rejects.toMatchObject({
        code: 'SOURCE_FAILED',
        message: matching(/refused the sync token \(HTTP 401\)/),
      });
      const gone = await startUpstream(Buffer.alloc(1));
      await gone.close();
      await expect(
        syncFrom(B.runtime.ingestDeps, {
          from: gone.url,
          token,
          actor: cliActor,
        }),
      ).rejects.toMatchObject({
        code: 'SOURCE_FAILED',
        message: matching(/cannot reach/),
      });
      expect(await snapshot(B)).toEqual(before);
    } finally {
      await B.close();
    }
  });

  it('a sync whose manifest conflicts with local groups fails with BUNDLE_CONFLICT; images and groups stay as they were', async () => {
    const B = await openLocal();
    try {
      const own = await store(B, testBytes(2_222, 'local'), 'local.pvmp');
      const image = await createImage(
        B.runtime,
        cliActor,
        { name: 'Local', arm64: { enabled: true, sha256: own } },
        'http://x',
      );
      await createGroup(B.runtime, cliActor, { name: 'Engineering', imageId: image.id });
      const before = (await snapshot(B)) as { images: unknown; groups: unknown; audit: number };
      await expect(syncFrom(B.runtime.ingestDeps, { from: A.url, token, actor: cliActor })).rejects.toMatchObject({
        code: 'BUNDLE_CONFLICT',
        message: matching(/group "Engineering" already has golden image "Local"/),
      });
      const after = (await snapshot(B)) as typeof before & { tmpFiles: object };
      expect({ images: after.images, groups: after.groups, audit: after.audit }).toEqual({
        images: before.images,
        groups: before.groups,
        audit: before.audit,
      });
      expect(after.tmpFiles).toEqual({});
    } finally {
      await B.close();
    }
  });

  it('CLI: goldmirror sync --from URL --token T, twice; then a wrong token', async () => {
    const dir = await makeTempDir();
    try {
      const env = cliEnv(dir);
      const first = await runCli(['sync', '--from', A.url, '--token', token, '--json'], env);
      expect(first.stderr).toBe('');
      expect(first.code).toBe(0);
      const report = JSON.parse(first.stdout) as { fetched: string[] };
      expect([...report.fetched].sort()).toEqual([...seedA.bytes.keys()].sort());
      let L = await openLocal(dir);
      const state = await logical(L.runtime.db);
      await L.close();
      expect(state).toEqual(await logical(A.runtime.db));

      const downloads = await downloadsStarted();
      const again = await runCli(['sync', '--from', A.url, '--token', token], env);
      expect(again.code).toBe(0);
      expect(again.stdout).toContain('0 package(s) downloaded');
      expect(again.stdout).toContain('images and groups: no changes');
      expect(await downloadsStarted()).toBe(downloads);

      const wrong = await runCli(['sync', '--from', A.url, '--token', 'gm_wrong'], env);
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toMatch(/refused the sync token \(HTTP 401\)/);
      L = await openLocal(dir);
      try {
        expect(await logical(L.runtime.db)).toEqual(state);
      } finally {
        await L.close();
      }
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('pull jobs wait their turn (MIRROR_FETCH_CONCURRENCY)', () => {
  const data = testBytes(8 * MiB + 1, 'queue');
  let M: TestMirror;
  let auth: Record<string, string>;
  let stalling: Upstream;
  beforeAll(async () => {
    M = await startMirror({ fetchConcurrency: 1 });
    auth = { Authorization: `Bearer ${(await createApiToken(M.runtime, cliActor, 'queue')).token}` };
    stalling = await startUpstream(data, { stallAfter: MiB });
  });
  afterAll(async () => {
    await stalling?.close();
    await M?.close();
  });

  async function start(): Promise<TransferJob> {
    const res = await fetch(`${M.url}/api/v1/fetch`, {
      method: 'POST',
      headers: { ...auth, 'Content-Type': 'application/json' },
      body: JSON.stringify({ url: `${stalling.url}/file.pvmp` }),
    });
    expect(res.status).toBe(202);
    return (await res.json()) as TransferJob;
  }
  const poll = async (id: string): Promise<TransferJob> =>
    (await (await fetch(`${M.url}/api/v1/fetch/${id}`, { headers: auth })).json()) as TransferJob;
  const cancel = async (id: string): Promise<number> =>
    (await fetch(`${M.url}/api/v1/fetch/${id}`, { method: 'DELETE', headers: auth })).status;
  async function until(what: string, check: () => Promise<boolean>): Promise<void> {
    for (let i = 0; !(await check()); i++) {
      if (i > 600) throw new Error(`timed out waiting until ${what}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  it('with a cap of 1, a second job is "queued" (API and page) and starts only when the first ends; a queued job cancels at once', async () => {
    const first = await start();
    expect(first.state).toBe('running');
    await until('the first job streams', async () => (await poll(first.id)).bytesDone >= MiB);

    const second = await start();
    expect(second.state).toBe('queued');
    const third = await start();
    expect(await poll(third.id)).toMatchObject({ state: 'queued', bytesDone: 0 });
    expect(stalling.seen).toHaveLength(1); // only the running job talks to the upstream
    const page = await (await fetch(`${M.url}/admin/upload`, { headers: auth })).text();
    expect(page).toContain(`${stalling.url}/file.pvmp`);
    expect(page.match(/<td>queued<form method="post" action="\/admin\/fetch\/[0-9a-f-]+\/cancel"/g)).toHaveLength(2);

    // Cancelling a queued job ends it without waiting for the running one.
    expect(await cancel(second.id)).toBe(204);
    expect(await M.runtime.transfers.wait(second.id)).toMatchObject({ state: 'cancelled', bytesDone: 0 });
    expect(stalling.seen).toHaveLength(1);

    // When the running job ends, the next queued one starts.
    expect(await cancel(first.id)).toBe(204);
    expect((await M.runtime.transfers.wait(first.id))?.state).toBe('cancelled');
    await until('the third job runs', async () => (await poll(third.id)).state === 'running');
    await until('the third job reaches the upstream', () => Promise.resolve(stalling.seen.length === 2));
    expect(await cancel(third.id)).toBe(204);
    expect((await M.runtime.transfers.wait(third.id))?.state).toBe('cancelled');
    expect(((await snapshot(M)) as { tmpFiles: object }).tmpFiles).toEqual({});
  });
});

describe('sync under the outbound guard', () => {
  it('a loopback upstream is refused unless MIRROR_FETCH_ALLOW opens it (library and CLI)', async () => {
    const up = await startUpstream(Buffer.alloc(1));
    const dir = await makeTempDir();
    const runtime = await openRuntime(testConfig(dir, { fetchAllow: '' }), createLogger('silent'));
    try {
      await expect(
        syncFrom(runtime.ingestDeps, { from: up.url, token: 'gm_x', actor: cliActor }),
      ).rejects.toMatchObject({
        code: 'FETCH_ADDRESS_REFUSED',
        message: containing('MIRROR_FETCH_ALLOW'),
      });
      const env = { ...cliEnv(path.join(dir, 'cli')), MIRROR_FETCH_ALLOW: '' };
      const res = await runCli(['sync', '--from', up.url, '--token', 'gm_x'], env);
      expect(res.code).toBe(1);
      expect(res.stderr).toMatch(/refusing to fetch from 127\.0\.0\.1: it is a loopback address/);
      expect(up.seen).toEqual([]);
    } finally {
      await runtime.close();
      await up.close();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('reads at most MAX_MANIFEST_BYTES of an upstream manifest, declared or streamed, and says so', async () => {
    let sent = 0;
    const server = http.createServer((req, res) => {
      const declared = req.url === '/declared/api/v1/export/manifest';
      // Streamed: "endless" (256 MiB) unless the reader stops.
      const size = declared ? MAX_MANIFEST_BYTES + MiB : 256 * MiB;
      res.writeHead(200, {
        'Content-Type': 'application/json',
        ...(declared ? { 'Content-Length': String(size) } : {}),
      });
      if (declared) return void res.end('{'); // the length alone is enough to refuse
      const chunk = Buffer.alloc(256 * 1024, 0x20);
      const pump = (): void => {
        while (sent < size && !res.destroyed) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const B = await openLocal();
    try {
      for (const from of [base, `${base}/declared`]) {
        await expect(
          syncFrom(B.runtime.ingestDeps, { from, token: 'gm_x', actor: cliActor }),
          from,
        ).rejects.toMatchObject({
          code: 'SOURCE_FAILED',
          message: containing(`the manifest of ${from} is larger than ${MAX_MANIFEST_BYTES} bytes`),
        });
      }
      // The streamed one was cut off soon after the cap (socket buffers hold a few MiB more), not read to its end.
      expect(sent).toBeGreaterThan(MAX_MANIFEST_BYTES);
      expect(sent).toBeLessThan(MAX_MANIFEST_BYTES + 32 * MiB);
    } finally {
      await B.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
