/**
 * kill -9 at the worst moments: during a tus upload, a CLI import, a stream of
 * API writes and a GC run. After a restart nothing partial is visible, the
 * database is consistent, temp files are gone and every stored blob verifies.
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../server/log.js';
import { openRuntime } from '../../server/runtime.js';
import { ingest } from '../../server/services/ingest.js';
import { runCli, spawnCli } from '../helpers/cli.js';
import { makeTempDir, sha256Hex, testBytes, testConfig, testStream } from '../helpers/env.js';
import { waitFor } from '../helpers/wait.js';
import {
  checkConsistency,
  createToken,
  downloadSha256,
  kill9,
  killAllChildren,
  listDir,
  mirrorEnv,
  request,
  sleep,
  startServe,
  track,
  tusCreate,
  tusPatchHeaders,
  TUS,
  writeTestFile,
} from './helpers.js';
import { catalogRows } from '../helpers/database.js';

const MiB = 1024 * 1024;

/** Crash tests poll the disk and the database closely: states between two writes are short. */
const POLL = { timeoutMs: 30_000, intervalMs: 10 };

/** testStream(size, seed) from byte `offset` on, in chunks of `chunk` bytes, pausing `pauseMs` between them. */
async function* slowStream(
  size: number,
  seed: string,
  offset: number,
  chunk: number,
  pauseMs: number,
): AsyncGenerator<Buffer> {
  let position = 0;
  for await (const piece of testStream(size, seed, chunk)) {
    const end = position + piece.length;
    if (end > offset) yield position >= offset ? piece : piece.subarray(offset - position);
    position = end;
    if (pauseMs > 0 && end > offset) await sleep(pauseMs);
  }
}

describe('kill -9 of the server and of CLI writers', () => {
  let dir: string;
  let dataDir: string;
  let env: Record<string, string>;

  beforeEach(async () => {
    dir = await makeTempDir('goldmirror-faults-crash-');
    dataDir = path.join(dir, 'data');
    env = mirrorEnv(dataDir);
  });
  afterEach(async () => {
    await killAllChildren();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('(a) during a tus upload: nothing visible after the restart, and the upload resumes to the right digest', async () => {
    const size = 48 * MiB;
    const seed = 'tus-crash';
    const expected = sha256Hex(testBytes(size, seed));
    const token = await createToken(env, 'crash-upload');
    let server = await startServe(env);

    const { res: created, uploadUrl } = await tusCreate(server.url, token, {
      length: size,
      filename: 'Crash Test.pvmp',
    });
    expect(created.status, created.body).toBe(201);
    const id = new URL(uploadUrl!).pathname.split('/').pop()!;
    const uploadFile = path.join(dataDir, 'uploads', id);
    // A slow PATCH (256 KiB every 10 ms), cut by the kill well before its end.
    const patch = request(uploadUrl!, {
      method: 'PATCH',
      headers: tusPatchHeaders(token, 0, { 'Content-Length': size }),
      body: slowStream(size, seed, 0, 256 * 1024, 10),
    }).then(
      (r) => r,
      (err: Error) => err,
    );
    await waitFor(async () => ((await fs.stat(uploadFile).catch(() => null))?.size ?? 0) >= 4 * MiB, {
      what: 'part of the upload on disk',
      ...POLL,
    });
    await kill9(server.child);
    const cut = await patch;
    expect(cut, 'the PATCH must not have completed').toBeInstanceOf(Error);
    const partial = (await fs.stat(uploadFile)).size;
    expect(partial).toBeLessThan(size);

    server = await startServe(env);
    const state = await checkConsistency(dataDir, env, {
      serverUrl: server.url,
    });
    expect(state.rows).toEqual([]);
    expect(state.files).toEqual([]);
    expect(state.doctor.files.unfinishedUploads).toBe(1);
    const unknown = await request(`${server.url}/d/${expected}/x.pvmp`);
    expect(unknown.status).toBe(404);

    // Resume: the restarted server reports how much it has, the client sends the rest.
    const resumeUrl = `${server.url}${new URL(uploadUrl!).pathname}`;
    const head = await request(resumeUrl, {
      method: 'HEAD',
      headers: { ...TUS, Authorization: `Bearer ${token}` },
    });
    expect(head.status).toBe(200);
    const offset = Number(head.headers['upload-offset']);
    expect(offset).toBe(partial);
    const done = await request(resumeUrl, {
      method: 'PATCH',
      headers: tusPatchHeaders(token, offset, {
        'Content-Length': size - offset,
      }),
      body: slowStream(size, seed, offset, MiB, 0),
    });
    expect(done.status, done.body).toBe(204);
    expect(done.headers['upload-sha256']).toBe(expected);
    expect(await listDir(path.join(dataDir, 'uploads'))).toEqual([]);
    const after = await checkConsistency(dataDir, env, {
      serverUrl: server.url,
    });
    expect(after.rows.map((r) => r.sha256)).toEqual([expected]);
  });

  it('(b) during CLI imports: the partial temp file is removed at the next start, no row, no blob', async () => {
    const big = path.join(dir, 'big.pvmp');
    const bigSize = 192 * MiB;
    const bigSha = await writeTestFile(big, bigSize, 'big-import');
    let server = await startServe(env);

    const importer = track(spawnCli(['import', big], env));
    const tmpDir = path.join(dataDir, 'tmp');
    let partFile = '';
    await waitFor(
      async () => {
        if (importer.exitCode !== null) throw new Error('the import finished before it could be killed');
        for (const name of await listDir(tmpDir)) {
          const st = await fs.stat(path.join(tmpDir, name)).catch(() => null);
          if (name.endsWith('.part') && st && st.size >= 8 * MiB) {
            partFile = name;
            return true;
          }
        }
        return false;
      },
      { what: 'a temp file of the import', ...POLL },
    );
    // Both the writer and the server die at once.
    await Promise.all([kill9(importer), kill9(server.child)]);
    expect(partFile).toMatch(new RegExp(`^ingest-${importer.pid}-[0-9a-f]+\\.part$`));
    expect(await listDir(tmpDir)).toContain(partFile);
    expect(await listDir(path.join(dataDir, 'blobs', 'sha256'))).toEqual([]);

    server = await startServe(env);
    const state = await checkConsistency(dataDir, env, {
      serverUrl: server.url,
    });
    expect(state.rows).toEqual([]);
    expect(state.files).toEqual([]);

    // Kills at spread-out moments of small imports (start-up, streaming, commit, done): whatever
    // the moment, the invariants hold; a kill between rename and insert may leave an orphan file.
    const outcomes: string[] = [];
    for (const [i, delayMs] of [700, 1300, 1600].entries()) {
      const file = path.join(dir, `small-${i}.pvmp`);
      await writeTestFile(file, 16 * MiB, `small-${i}`);
      const child = track(spawnCli(['import', file], env));
      await sleep(delayMs);
      const exit = child.exitCode;
      await kill9(child);
      outcomes.push(exit === null ? 'killed' : `exited ${exit}`);
    }
    await kill9(server.child);
    server = await startServe(env);
    const mixed = await checkConsistency(dataDir, env, {
      allowOrphans: true,
      serverUrl: server.url,
    });
    expect(mixed.orphans.length).toBeLessThanOrEqual(outcomes.filter((o) => o === 'killed').length);

    // The interrupted package imports cleanly afterwards.
    const again = await runCli(['import', big, '--sha256', bigSha, '--json'], env);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({
      sha256: bigSha,
      size: bigSize,
      created: true,
    });
    expect(await downloadSha256(`${server.url}/d/${bigSha}/big.pvmp`)).toEqual({
      status: 200,
      sha256: bigSha,
      bytes: bigSize,
    });
    await checkConsistency(dataDir, env, {
      allowOrphans: true,
      serverUrl: server.url,
      maxDownloads: 0,
    });
  });

  it('(c) during a stream of API writes: every acknowledged write survives, the database is intact', async () => {
    const token = await createToken(env, 'crash-writes');
    let server = await startServe(env);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    const acked = new Set<string>();
    let attempted = 0;
    const failures: string[] = [];
    const writer = async (w: number): Promise<void> => {
      for (let i = 0; i < 5000; i++) {
        const name = `w${w}-${i}`;
        attempted += 1;
        try {
          const res = await request(`${server.url}/api/v1/groups`, {
            method: 'POST',
            headers: {
              Authorization: `Bearer ${token}`,
              'Content-Type': 'application/json',
            },
            body: JSON.stringify({ name, licenseKey: `KEY-${w}-${i}` }),
            agent,
          });
          if (res.status === 201) acked.add(name);
          else failures.push(`${res.status} ${res.body}`);
        } catch {
          return; // the server died
        }
      }
    };
    const writers = [0, 1, 2, 3].map(writer);
    await waitFor(() => acked.size >= 80, { what: 'some acknowledged writes', ...POLL, timeoutMs: 30_000 });
    await kill9(server.child);
    await Promise.all(writers);
    agent.destroy();
    expect(failures).toEqual([]);

    server = await startServe(env);
    const list = await request(`${server.url}/api/v1/groups`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    expect(list.status).toBe(200);
    const groups = JSON.parse(list.body) as Array<{
      name: string;
      licenseKey: string;
    }>;
    const names = groups.map((g) => g.name);
    expect(new Set(names).size).toBe(names.length);
    for (const name of acked) expect(names).toContain(name);
    expect(names.length).toBeLessThanOrEqual(attempted);
    for (const g of groups) expect(g.licenseKey).toBe(`KEY-${g.name.slice(1)}`);
    // Each group and its audit entry were written in one transaction: both or neither.
    const audit = await request(`${server.url}/api/v1/audit?limit=500`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    expect(groups.length).toBeLessThan(450); // all of them fit in one audit page
    const creates = (JSON.parse(audit.body) as Array<{ action: string }>).filter(
      (a) => a.action === 'group.create',
    ).length;
    expect(creates).toBe(groups.length);

    await checkConsistency(dataDir, env);
    const more = await request(`${server.url}/api/v1/groups`, {
      method: 'POST',
      headers: {
        Authorization: `Bearer ${token}`,
        'Content-Type': 'application/json',
      },
      body: JSON.stringify({ name: 'after-restart' }),
    });
    expect(more.status, more.body).toBe(201);
  });

  it('(d) during GC: rows and files stay in step, and the next GC finishes the job', async () => {
    const count = 800;
    {
      const runtime = await openRuntime(testConfig(dataDir), createLogger('silent'));
      try {
        for (let i = 0; i < count; i++) {
          await ingest(runtime.ingestDeps, {
            source: [testBytes(700, `gc-${i}`)],
            fileName: `gc-${i}.pvmp`,
          });
        }
      } finally {
        await runtime.close();
      }
    }
    let server = await startServe(env);
    const gcEnv = { ...env, MIRROR_GC_GRACE: '0' };
    const rowCount = async (): Promise<number> =>
      Number((await catalogRows<{ n: number }>(dataDir, 'select count(*) as n from blobs'))[0]!.n);
    let killedAt = -1;
    expect(await rowCount()).toBe(count);
    const firstGc = track(spawnCli(['gc'], gcEnv));
    await waitFor(
      async () => {
        if (firstGc.exitCode !== null) throw new Error('gc finished before it could be killed');
        const n = await rowCount();
        return n <= count - 50 && n > 0;
      },
      { what: 'gc to be half-way', ...POLL, timeoutMs: 60_000 },
    );
    await Promise.all([kill9(firstGc), kill9(server.child)]);
    killedAt = await rowCount();
    expect(killedAt).toBeGreaterThan(0);
    expect(killedAt).toBeLessThan(count);

    server = await startServe(env);
    const state = await checkConsistency(dataDir, env, {
      allowOrphans: true,
      serverUrl: server.url,
      maxDownloads: 25,
    });
    expect(state.rows.length).toBe(killedAt);
    // GC moves a file aside inside the transaction that deletes its row: the restart put back or removed the
    // one in flight (tmp/ is empty, checked above), so blobs/ holds no orphan.
    expect(state.orphans).toEqual([]);

    // The 25 just downloaded carry fresh transfer heartbeats: GC keeps those, removes the rest.
    const gc = await runCli(['gc', '--json'], gcEnv);
    expect(gc.code, gc.stderr).toBe(0);
    const report = JSON.parse(gc.stdout) as {
      removed: Array<{ orphanFile: boolean }>;
      kept: Array<{ reason: string }>;
    };
    expect(report.kept.length).toBe(25);
    expect(report.kept.every((k) => k.reason === 'in-use')).toBe(true);
    expect(report.removed.length).toBe(killedAt - 25 + state.orphans.length);
    expect(report.removed.filter((r) => r.orphanFile).length).toBe(state.orphans.length);
    const final = await checkConsistency(dataDir, env, {
      serverUrl: server.url,
    });
    expect(final.rows.map((r) => r.sha256).sort()).toEqual(
      state.rows
        .slice(0, 25)
        .map((r) => r.sha256)
        .sort(),
    );
    expect(final.files.length).toBe(25);
  });
});
