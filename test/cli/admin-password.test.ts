/**
 * The admin's password lifecycle with the real CLI in child processes:
 * MIRROR_ADMIN_PASSWORD only creates the admin (a changed password survives
 * restarts with the same environment), `goldmirror admin reset-password`
 * resets it (generated or from stdin) and ends every session, and
 * `token create --scope` / `token list` show scopes.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INITIAL_PASSWORD_FILE } from '../../server/services/auth.js';
import {
  ADMIN_PASSWORD,
  bootstrapTestAdmin,
  call,
  expectError,
  issueToken,
  matching,
  mustSignIn,
  signIn,
} from '../helpers/api.js';
import { repoRoot, runCli, spawnCli, waitForOk } from '../helpers/cli.js';
import { freePort, makeTempDir, startMirror, type TestMirror } from '../helpers/env.js';

describe('MIRROR_ADMIN_PASSWORD with `goldmirror serve`', () => {
  it('creates the admin at the first start only: a password changed on the page survives a restart with the same environment', async () => {
    const dir = await makeTempDir();
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const env = {
      MIRROR_DATA_DIR: dir,
      MIRROR_MIN_FREE_BYTES: '0',
      MIRROR_HOST: '127.0.0.1',
      MIRROR_PORT: String(port),
      MIRROR_ADMIN_PASSWORD: ADMIN_PASSWORD,
    };
    const serve = async <T>(fn: (logs: () => string) => Promise<T>): Promise<T> => {
      const server = spawnCli(['serve'], { ...env, MIRROR_LOG_LEVEL: 'info' });
      let logs = '';
      server.stderr!.on('data', (d: Buffer) => (logs += d.toString()));
      const exited = new Promise<number | null>((r) => server.on('exit', (code) => r(code)));
      try {
        await waitForOk(`${url}/healthz`);
        return await fn(() => logs);
      } finally {
        server.kill('SIGTERM');
        expect(await exited).toBe(0);
      }
    };
    const changed = 'changed on the account page';
    try {
      await serve(async () => {
        const session = await mustSignIn(url, ADMIN_PASSWORD);
        const res = await call(url, 'POST', '/api/v1/session/password', {
          session,
          json: { currentPassword: ADMIN_PASSWORD, newPassword: changed },
        });
        expect(res.status, res.text).toBe(204);
      });
      await serve(async (logs) => {
        expect((await signIn(url, ADMIN_PASSWORD)).res.status).toBe(401);
        expect((await signIn(url, changed)).res.status).toBe(200);
        expect(logs()).toContain('MIRROR_ADMIN_PASSWORD is set, but an admin exists');
      });
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('goldmirror admin reset-password', () => {
  let m: TestMirror;
  let env: Record<string, string>;
  beforeAll(async () => {
    m = await startMirror();
    await bootstrapTestAdmin(m);
    env = { MIRROR_DATA_DIR: m.dir, MIRROR_MIN_FREE_BYTES: '0' };
  });
  afterAll(async () => {
    await m?.close();
  });

  it('prints a new random password (alone on the last line), ends every session of the running server and keeps API tokens', async () => {
    const sessions = [await mustSignIn(m.url), await mustSignIn(m.url)];
    const token = await issueToken(m, 'kept-by-reset');
    await fs.writeFile(path.join(m.dir, INITIAL_PASSWORD_FILE), 'an old first password\n', { mode: 0o600 });

    const res = await runCli(['admin', 'reset-password'], env);
    expect(res.code, res.stderr).toBe(0);
    const lines = res.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    const password = lines[0]!;
    expect(password).toMatch(/^[A-Za-z0-9_-]{24}$/);
    expect(res.stderr).toMatch(
      /^password of user admin reset; 2 session\(s\) ended; removed the outdated .*initial-admin-password\. The new password is shown only once:\n$/,
    );
    await expect(fs.access(path.join(m.dir, INITIAL_PASSWORD_FILE))).rejects.toMatchObject({ code: 'ENOENT' });

    for (const session of sessions)
      expectError(await call(m.url, 'GET', '/api/v1/session', { session }), 401, 'UNAUTHORIZED');
    expect((await signIn(m.url, ADMIN_PASSWORD)).res.status).toBe(401);
    expect((await signIn(m.url, password)).res.status).toBe(200);
    expect((await call(m.url, 'GET', '/api/v1/images', { token })).status).toBe(200);
    const audit = await m.runtime.db
      .selectFrom('audit_log')
      .select(['actor', 'action', 'target', 'details'])
      .where('action', '=', 'user.password_reset')
      .execute();
    expect(audit).toEqual([
      {
        actor: matching(/^cli:/),
        action: 'user.password_reset',
        target: 'user:admin',
        details: JSON.stringify({ sessionsEnded: 2, tokensRevoked: 0 }),
      },
    ]);
  });

  it('reads the new password from stdin when it is piped, and with --revoke-tokens revokes every API token', async () => {
    const session = await mustSignIn(m.url, (await resetTo('first piped password')).password);
    const token = await issueToken(m, 'revoked-by-reset');
    const chosen = 'a password from a pipe';
    const res = await runCli(
      ['admin', 'reset-password', '--revoke-tokens', '--user', 'admin'],
      env,
      repoRoot,
      `${chosen}\r\nignored second line\n`,
    );
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toBe('password of user admin reset; 1 session(s) ended; 2 API token(s) revoked\n');
    expect(res.stdout).not.toContain(chosen);
    expectError(await call(m.url, 'GET', '/api/v1/session', { session }), 401, 'UNAUTHORIZED');
    expectError(await call(m.url, 'GET', '/api/v1/images', { token }), 401, 'UNAUTHORIZED');
    expect(await m.runtime.db.selectFrom('api_tokens').select('name').execute()).toEqual([]);
    expect((await signIn(m.url, chosen)).res.status).toBe(200);

    const json = await runCli(['admin', 'reset-password', '--stdin', '--json'], env, repoRoot, 'yet another password');
    expect(JSON.parse(json.stdout)).toMatchObject({
      username: 'admin',
      generatedPassword: null,
      sessionsEnded: 1,
      tokensRevoked: 0,
    });
  });

  it('refuses what it cannot do, changing nothing', async () => {
    const { password } = await resetTo('the password before');
    const short = await runCli(['admin', 'reset-password'], env, repoRoot, 'short\n');
    expect(short.code).toBe(2);
    expect(short.stderr).toBe('goldmirror: error: the new password must be at least 10 characters\n');
    const empty = await runCli(['admin', 'reset-password', '--stdin'], env, repoRoot, '');
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/^goldmirror: error: --stdin: no password on standard input\n/);
    const nobody = await runCli(['admin', 'reset-password', '--user', 'nobody'], env);
    expect(nobody.code).toBe(1);
    expect(nobody.stderr).toBe('goldmirror: error: no user named "nobody"\n');
    const usage = await runCli(['admin', 'set-password'], env);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain(
      'usage: goldmirror admin reset-password [--user NAME] [--revoke-tokens] [--stdin] [--json]',
    );
    expect((await signIn(m.url, password)).res.status).toBe(200);
  });

  it('token create --scope, and token list shows scopes and last use', async () => {
    const created = await runCli(['token', 'create', 'branch-sync', '--scope', 'sync'], env);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stderr).toBe('created API token branch-sync with scope sync; it is shown only once:\n');
    const token = created.stdout.trim();
    expect((await call(m.url, 'GET', '/api/v1/export/manifest', { token })).status).toBe(200);
    expectError(await call(m.url, 'GET', '/api/v1/images', { token }), 403, 'TOKEN_SCOPE');
    await runCli(['token', 'create', 'admin-script'], env);

    const list = await runCli(['token', 'list'], env);
    expect(list.stdout).toMatch(/^NAME\s+SCOPE\s+CREATED\s+LAST USED\n/);
    expect(list.stdout).toMatch(/^admin-script\s+admin\s+\S+\s+never$/m);
    expect(list.stdout).toMatch(/^branch-sync\s+sync\s+\S+\s+\d{4}-\d\d-\d\dT[\d:.]+Z$/m);
    const json = JSON.parse((await runCli(['token', 'list', '--json'], env)).stdout) as Array<{
      name: string;
      scope: string;
    }>;
    expect(json.map((t) => [t.name, t.scope])).toEqual([
      ['admin-script', 'admin'],
      ['branch-sync', 'sync'],
    ]);

    const bad = await runCli(['token', 'create', 'x', '--scope', 'write'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('token scope: must be one of admin, read, sync');
  });

  async function resetTo(password: string): Promise<{ password: string }> {
    const res = await runCli(['admin', 'reset-password'], env, repoRoot, password);
    expect(res.code, res.stderr).toBe(0);
    return { password };
  }
});
