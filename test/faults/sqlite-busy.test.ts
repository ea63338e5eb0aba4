/**
 * SQLite contention: 20 CLI processes and a running server write the same
 * database at the same time. WAL and the busy timeout must make every write
 * wait its turn: all succeed, none sees "database is locked".
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnCli } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/env.js';
import {
  createToken,
  killAllChildren,
  mirrorEnv,
  request,
  startServe,
  track,
  waitExit,
  type ServeProc,
} from './helpers.js';

const LOCKED = /database is locked|SQLITE_BUSY|SQLITE_LOCKED/i;

describe('the CLI and the server writing at the same time', () => {
  let work: string;
  let env: Record<string, string>;
  let server: ServeProc;
  let token: string;

  beforeAll(async () => {
    work = await makeTempDir('goldmirror-faults-busy-');
    env = mirrorEnv(path.join(work, 'data'));
    token = await createToken(env, 'busy');
    server = await startServe(env);
  });
  afterAll(async () => {
    await killAllChildren();
    await fs.rm(work, { recursive: true, force: true });
  });

  it('20 concurrent `group create` processes while API writes run: all succeed, no lock errors', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const api = (method: string, p: string, body?: unknown) =>
      request(`${server.url}/api/v1${p}`, {
        method,
        agent,
        headers: {
          Authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });

    const cliCount = 20;
    const procs = Array.from({ length: cliCount }, (_, i) => {
      const child = track(spawnCli(['group', 'create', `cli-${i}`, '--license-key', `CLI-KEY-${i}`, '--json'], env));
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      return { child, out: () => ({ stdout, stderr }) };
    });
    let clisDone = false;
    const clis = Promise.all(
      procs.map(async (p) => ({
        ...(await waitExit(p.child, 120_000)),
        ...p.out(),
      })),
    ).finally(() => {
      clisDone = true;
    });

    // Four API writers create and rename groups until every CLI process has finished (bounded).
    const apiResults: Array<{ status: number; body: string }> = [];
    const apiCreated: string[] = [];
    const writer = async (w: number): Promise<void> => {
      for (let i = 0; i < 2000 && !clisDone; i++) {
        const created = await api('POST', '/groups', { name: `api-${w}-${i}` });
        apiResults.push(created);
        if (created.status !== 201) continue;
        apiCreated.push(`api-${w}-${i}`);
        const id = (JSON.parse(created.body) as { id: number }).id;
        const patched = await api('PATCH', `/groups/${id}`, {
          licenseKey: `API-KEY-${w}-${i}`,
        });
        apiResults.push(patched);
      }
    };
    await Promise.all([0, 1, 2, 3].map(writer));
    const results = await clis;
    agent.destroy();

    for (const [i, r] of results.entries()) {
      expect(r.stderr, `cli-${i}`).not.toMatch(LOCKED);
      expect(r.code, `cli-${i}: ${r.stderr}`).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({
        name: `cli-${i}`,
        licenseKey: `CLI-KEY-${i}`,
      });
    }
    expect(apiResults.length).toBeGreaterThan(10); // the API really wrote while the CLIs ran
    for (const r of apiResults) {
      expect(r.body).not.toMatch(LOCKED);
      expect([200, 201], r.body).toContain(r.status);
    }
    expect(server.output().stderr).not.toMatch(LOCKED);

    const list = await request(`${server.url}/api/v1/groups`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    const names = (JSON.parse(list.body) as Array<{ name: string }>).map((g) => g.name).sort();
    expect(names).toEqual([...Array.from({ length: cliCount }, (_, i) => `cli-${i}`), ...apiCreated].sort());
  });
});
