/**
 * `goldmirror image|group|token`: the real CLI in child processes, on the
 * data dir of a running mirror (the same SQLite file, as in production),
 * so a token made by the CLI can be used against the server at once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GroupView } from '../../server/services/groups.js';
import type { DeletedImage, ImageView, PortalValues } from '../../server/services/images.js';
import { anyNumber, anyString, call, issueToken } from '../helpers/api.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { putBlob, sha256Hex, startMirror, testBytes, type TestMirror } from '../helpers/env.js';

const PUBLIC = 'http://mirror.test:8080';

describe('goldmirror image, group and token commands', () => {
  let mirror: TestMirror;
  let env: Record<string, string>;
  let arm: string;
  let x86: string;
  /** An API token for looking at the server's view of what the CLI did. */
  let reader: string;
  const cli = (...args: string[]): Promise<CliResult> => runCli(args, env);
  const ok = async (...args: string[]): Promise<CliResult> => {
    const res = await cli(...args);
    expect({ args, code: res.code, stderr: res.stderr }).toEqual({ args, code: 0, stderr: '' });
    return res;
  };
  const json = async <T = unknown>(...args: string[]): Promise<T> =>
    JSON.parse((await ok(...args, '--json')).stdout) as T;
  /** A failure: the exit code and one clear line on stderr, no stack trace, nothing on stdout. */
  const fails = async (code: number, message: RegExp, ...args: string[]): Promise<void> => {
    const res = await cli(...args);
    expect({ args, code: res.code }).toEqual({ args, code });
    expect(res.stderr).toMatch(message);
    expect(res.stderr).toMatch(/^goldmirror: error: /);
    expect(res.stderr).not.toMatch(/\n\s+at /);
    expect(res.stdout).toBe('');
  };

  beforeAll(async () => {
    mirror = await startMirror();
    arm = await putBlob(mirror, testBytes(70_000, 'cli-arm'), 'Windows 11 (ARM).pvmp');
    x86 = await putBlob(mirror, testBytes(60_000, 'cli-x86'), 'Windows 11.pvmp');
    reader = await issueToken(mirror, 'test-reader');
    env = { MIRROR_DATA_DIR: mirror.dir, MIRROR_PUBLIC_URL: PUBLIC, MIRROR_MIN_FREE_BYTES: '0', USER: 'cli-tester' };
  });
  afterAll(async () => {
    await mirror?.close();
  });

  it('image create: --json gives the image with its Download URL; text shows the portal values', async () => {
    const img = await json<ImageView>(
      'image',
      'create',
      'Windows 11',
      '--description',
      'Golden',
      '--arm64',
      arm.toUpperCase(),
    );
    expect(img).toMatchObject({ id: anyNumber(), name: 'Windows 11', description: 'Golden', groups: [] });
    expect(img.arm64).toMatchObject({
      enabled: true,
      sha256: arm,
      size: 70_000,
      url: `${PUBLIC}/d/${arm}/Windows-11-ARM.pvmp`,
    });
    expect(img.x86_64).toMatchObject({ enabled: false, sha256: null, url: null });

    const text = (await ok('image', 'create', 'Windows 11 Intel', '--x86_64', x86)).stdout;
    expect(text).toMatch(/^golden image \d+: Windows 11 Intel$/m);
    expect(text).toContain('Apple silicon: disabled\n');
    expect(text).toContain('Intel: enabled\n');
    expect(text).toContain(`  Download URL: ${PUBLIC}/d/${x86}/Windows-11.pvmp\n`);
    expect(text).toContain(`  SHA-256:      ${x86}\n`);
    expect(text).toContain('groups: none\n');
  });

  it('image create refuses bad input with exit 1 or 2 and one clear line', async () => {
    const absent = sha256Hex(Buffer.from('not stored'));
    await Promise.all([
      fails(1, /a golden image named "Windows 11" already exists/, 'image', 'create', 'Windows 11'),
      fails(1, new RegExp(`no package with sha256 ${absent} is stored`), 'image', 'create', 'Ghost', '--arm64', absent),
      fails(2, /must be 64 hexadecimal digits/, 'image', 'create', 'Bad digest', '--x86_64', 'abc'),
    ]);
  });

  it('image list and show, as --json and text', async () => {
    const [list, shown, byId, missing] = await Promise.all([
      json<ImageView[]>('image', 'list'),
      json<ImageView & { portal: PortalValues }>('image', 'show', 'Windows 11'),
      cli('image', 'show', '1'),
      cli('image', 'show', 'nope'),
    ]);
    // Nothing from the refused creates above.
    expect(list.map((i) => [i.name, i.arm64.enabled, i.x86_64.enabled])).toEqual([
      ['Windows 11', true, false],
      ['Windows 11 Intel', false, true],
    ]);
    expect(shown).toMatchObject({
      name: 'Windows 11',
      portal: { name: 'Windows 11', ready: true, problems: [], primaryLicenseKey: false },
    });
    expect(shown.portal.architectures.arm64).toEqual({
      label: 'Apple silicon',
      enabled: true,
      downloadUrl: `${PUBLIC}/d/${arm}/Windows-11-ARM.pvmp`,
      sha256: arm,
      size: 70_000,
    });
    expect(byId.code).toBe(0);
    expect(byId.stdout).toMatch(/^golden image 1: Windows 11$/m);
    expect(byId.stdout).toContain(`  Download URL: ${PUBLIC}/d/${arm}/Windows-11-ARM.pvmp\n`);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe('goldmirror: error: no golden image named or numbered "nope"\n');
  });

  it('group create, assign (one image per group, --none) and list', async () => {
    const [sales, hq] = await Promise.all([
      json<GroupView>('group', 'create', 'Sales', '--image', 'Windows 11', '--license-key', 'SALES-0001'),
      json<GroupView>('group', 'create', 'HQ', '--primary', '--image', 'Windows 11'),
    ]);
    expect(sales).toMatchObject({
      name: 'Sales',
      licenseKey: 'SALES-0001',
      primary: false,
      image: { name: 'Windows 11' },
    });
    expect(hq).toMatchObject({ name: 'HQ', primary: true, licenseKey: null, image: { name: 'Windows 11' } });

    await Promise.all([
      fails(1, /primary license key is already held by group "HQ"/, 'group', 'create', 'Branch', '--primary'),
      // One image per group: assigning another is refused until the group is cleared.
      fails(
        1,
        /group "Sales" already has the golden image "Windows 11"; a group can have only one.*remove/,
        'group',
        'assign',
        'Sales',
        'Windows 11 Intel',
      ),
    ]);
    const sameAsBefore = await call<GroupView[]>(mirror.url, 'GET', '/api/v1/groups', { token: reader });
    expect(sameAsBefore.body.map((g) => [g.name, g.image?.name])).toEqual([
      ['HQ', 'Windows 11'],
      ['Sales', 'Windows 11'],
    ]);

    const cleared = await json<GroupView>('group', 'assign', 'Sales', '--none');
    expect(cleared).toMatchObject({ name: 'Sales', imageId: null, image: null });
    expect((await ok('group', 'assign', 'Sales', 'Windows 11 Intel')).stdout).toBe('group Sales → Windows 11 Intel\n');

    const groups = await json<GroupView[]>('group', 'list');
    expect(groups.map((g) => [g.name, g.primary, g.licenseKey, g.image?.name ?? null])).toEqual([
      ['HQ', true, null, 'Windows 11'],
      ['Sales', false, 'SALES-0001', 'Windows 11 Intel'],
    ]);
  });

  it('token create prints the token alone on the last line; it works as a bearer token until revoked', async () => {
    const res = await cli('token', 'create', 'ci-bot');
    expect(res.code).toBe(0);
    // The notice goes to stderr, so `… | tail -n 1` (or all of stdout) is the token.
    expect(res.stderr).toBe('created API token ci-bot with scope admin; it is shown only once:\n');
    const lines = res.stdout.trimEnd().split('\n');
    const token = lines.at(-1)!;
    expect(token).toMatch(/^gm_[A-Za-z0-9_-]{40,}$/);
    expect(lines).toHaveLength(1);

    // The server sees what the CLI wrote to the shared database, and accepts the token.
    const groups = await call<GroupView[]>(mirror.url, 'GET', '/api/v1/groups', { token });
    expect(groups.status).toBe(200);
    expect(groups.body.map((g) => g.name)).toEqual(['HQ', 'Sales']);
    expect((await call<{ actor: string }>(mirror.url, 'GET', '/api/v1/session', { token })).body.actor).toBe(
      'token:ci-bot',
    );

    const listed = await json<Array<{ name: string }>>('token', 'list');
    expect(listed.find((t) => t.name === 'ci-bot')).toEqual({
      name: 'ci-bot',
      scope: 'admin',
      createdAt: anyString(),
      lastUsedAt: anyString(),
    });
    expect(JSON.stringify(listed)).not.toContain(token);

    expect((await ok('token', 'revoke', 'ci-bot')).stdout).toBe('revoked API token ci-bot\n');
    expect((await call(mirror.url, 'GET', '/api/v1/groups', { token })).status).toBe(401);
    await fails(1, /no token named "ci-bot"/, 'token', 'revoke', 'ci-bot');

    const audit = await mirror.runtime.db
      .selectFrom('audit_log')
      .select(['actor', 'action', 'target'])
      .where('target', '=', 'token:ci-bot')
      .orderBy('id')
      .execute();
    expect(audit).toEqual([
      { actor: 'cli:cli-tester', action: 'token.create', target: 'token:ci-bot' },
      { actor: 'cli:cli-tester', action: 'token.revoke', target: 'token:ci-bot' },
    ]);
  });

  it('image delete reports the groups left without a golden image', async () => {
    const deleted = await json<DeletedImage>('image', 'delete', 'Windows 11 Intel');
    expect(deleted.deleted).toMatchObject({ name: 'Windows 11 Intel', x86_64: { sha256: x86 } });
    expect(deleted.groupsLeftWithoutImage).toEqual([{ id: anyNumber(), name: 'Sales' }]);

    const text = (await ok('image', 'delete', 'Windows 11')).stdout;
    expect(text).toBe('deleted golden image Windows 11\nthese groups now have no golden image: HQ\n');

    expect((await call<ImageView[]>(mirror.url, 'GET', '/api/v1/images', { token: reader })).body).toEqual([]);
    const groups = await call<GroupView[]>(mirror.url, 'GET', '/api/v1/groups', { token: reader });
    expect(groups.body.map((g) => [g.name, g.image])).toEqual([
      ['HQ', null],
      ['Sales', null],
    ]);
  });
});
