/**
 * The CLI builds links from the same public address as the server (stored
 * in the database; MIRROR_PUBLIC_URL wins), never from this machine's host
 * name; it says when the address is missing and warns when Macs cannot
 * reach it. The real CLI in child processes on a running mirror's data dir.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PublicAddress } from '../../server/services/settings.js';
import { call, issueToken } from '../helpers/api.js';
import { runCli } from '../helpers/cli.js';
import { makeTempDir, sha256Hex, startMirror, testBytes, type TestMirror } from '../helpers/env.js';

const LAN = 'http://mirror.example.lan:8080';

describe('CLI and the public address', () => {
  let mirror: TestMirror;
  let tmp: string;
  let env: Record<string, string>;
  let pkg: string;
  let sha: string;
  let token: string;

  beforeAll(async () => {
    mirror = await startMirror();
    token = await issueToken(mirror, 'cli-address');
    tmp = await makeTempDir('goldmirror-cli-address-');
    const data = testBytes(50_000, 'cli-address');
    sha = sha256Hex(data);
    pkg = path.join(tmp, 'Win11-arm.pvmp');
    await fs.writeFile(pkg, data);
    // No MIRROR_PUBLIC_URL: the CLI must find the address where the server keeps it.
    env = { MIRROR_DATA_DIR: mirror.dir, MIRROR_MIN_FREE_BYTES: '0', MIRROR_PUBLIC_URL: '' };
  });
  afterAll(async () => {
    await mirror?.close();
    if (tmp) await fs.rm(tmp, { recursive: true, force: true });
  });

  it('says the address is missing instead of guessing one from this machine’s host name', async () => {
    const res = await runCli(['import', pkg], env);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain(`sha256: ${sha}`);
    expect(res.stdout).toContain('url:    (not ready: no public address is set)\n');
    expect(res.stderr).toMatch(/^goldmirror: note: the public address Macs use to reach this mirror is not set/);
    expect(res.stdout + res.stderr).not.toContain(`//${os.hostname()}`);
    expect(res.stdout).not.toContain('/d/');
    const json = JSON.parse((await runCli(['import', pkg, '--json'], env)).stdout) as { url: unknown };
    expect(json.url).toBeNull();
    expect((await runCli(['settings'], env)).stdout).toMatch(/^public address: not set/);
  });

  it('sets the same setting the server uses, and prints links from it', async () => {
    const set = await runCli(['settings', 'public-url', `${LAN}/`], { ...env, USER: 'cli-admin' });
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toMatch(new RegExp(`^public address: ${LAN} \\(set by cli:cli-admin at `));
    expect(set.stderr).toBe('');
    // The running server sees it at once: same database.
    const server = await call<{ publicUrl: PublicAddress }>(mirror.url, 'GET', '/api/v1/settings', { token });
    expect(server.body.publicUrl).toMatchObject({ url: LAN, source: 'database', updatedBy: 'cli:cli-admin' });

    const res = await runCli(['import', pkg], env);
    expect(res.stderr).toBe('');
    expect(res.stdout).toContain(`url:    ${LAN}/d/${sha}/Win11-arm.pvmp\n`);
    const created = await runCli(['image', 'create', 'CLI image', '--arm64', sha], env);
    expect(created.stdout).toContain(`  Download URL: ${LAN}/d/${sha}/Win11-arm.pvmp\n`);
  });

  it('refuses an invalid address (exit 2) and names the problem', async () => {
    const res = await runCli(['settings', 'public-url', 'http://admin:pw@mirror.lan'], env);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/^goldmirror: error: invalid public address: must not contain a user name or password/);
    expect((await runCli(['settings', 'public-url'], env)).code).toBe(2);
  });

  it('warns on stderr whenever it prints links with a loopback address', async () => {
    const set = await runCli(['settings', 'public-url', 'http://127.0.0.1:8080'], env);
    expect(set.code).toBe(0);
    expect(set.stderr).toMatch(
      /^goldmirror: warning: Macs cannot reach this mirror at http:\/\/127\.0\.0\.1:8080: 127\.0\.0\.1 is a loopback address/,
    );
    const show = await runCli(['image', 'show', 'CLI image'], env);
    expect(show.stdout).toContain(`  Download URL: http://127.0.0.1:8080/d/${sha}/Win11-arm.pvmp\n`);
    expect(show.stderr).toMatch(/goldmirror: warning: Macs cannot reach this mirror/);
    await runCli(['settings', 'public-url', LAN], env);
  });

  it('lets MIRROR_PUBLIC_URL win, and refuses to change the stored one under it', async () => {
    const withEnv = { ...env, MIRROR_PUBLIC_URL: 'http://from-env.lan:9000' };
    const show = await runCli(['image', 'show', 'CLI image'], withEnv);
    expect(show.stdout).toContain(`  Download URL: http://from-env.lan:9000/d/${sha}/Win11-arm.pvmp\n`);
    expect((await runCli(['settings'], withEnv)).stdout).toMatch(
      /^public address: http:\/\/from-env\.lan:9000 \(from MIRROR_PUBLIC_URL/,
    );
    const refused = await runCli(['settings', 'public-url', 'http://other.lan'], withEnv);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^goldmirror: error: the public address is set by MIRROR_PUBLIC_URL/);
  });

  it('shows a pending portal change, marks it updated, and gc says why it keeps the retired package', async () => {
    await runCli(['settings', 'public-url', LAN], env);
    const data = testBytes(40_000, 'cli-address-2');
    const other = path.join(tmp, 'Win11-arm-v2.pvmp');
    await fs.writeFile(other, data);
    expect((await runCli(['import', other], env)).code).toBe(0);
    // Switch the image's package through the API (as the admin page does).
    const img = (
      await call<Array<{ id: number; name: string }>>(mirror.url, 'GET', '/api/v1/images', { token })
    ).body.find((i) => i.name === 'CLI image')!;
    expect(
      (
        await call(mirror.url, 'PATCH', `/api/v1/images/${img.id}`, {
          token,
          json: { arm64: { sha256: sha256Hex(data) } },
        })
      ).status,
    ).toBe(200);
    const show = await runCli(['image', 'show', 'CLI image'], env);
    expect(show.stdout).toContain(
      `portal values changed — update the portal, then: goldmirror image portal-updated ${img.id}\n`,
    );
    expect(show.stdout).toContain(`  Apple silicon sha256: ${sha} → ${sha256Hex(data)}\n`);
    const gc = await runCli(['gc', '--dry-run'], { ...env, MIRROR_GC_GRACE: '0' });
    expect(gc.stdout).toContain(
      `kept ${sha}  (retired, but the portal still sends Macs here: update the portal and mark it updated on the image page)`,
    );
    const marked = await runCli(['image', 'portal-updated', 'CLI image'], env);
    expect(marked.stdout).toBe('marked the portal values of CLI image as updated\n');
    expect((await runCli(['image', 'show', 'CLI image'], env)).stdout).not.toContain('portal values changed');
    expect((await runCli(['image', 'portal-updated', 'CLI image'], env)).stdout).toBe(
      'nothing to do: the portal values of CLI image had not changed\n',
    );
  });
});
