/**
 * POST /api/v1/images/:id/check: the server fetches its own Download URLs
 * the way a Mac would (HEAD, then ranged GETs), against the real listening
 * server, and compares sampled bytes with the stored package. The URLs come
 * from the configured public address, never from the request's Host; the
 * report says it ran on the server, warns about addresses Macs cannot
 * reach, and gives the `curl -I` line to run on a Mac.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageView } from '../../server/services/images.js';
import type { LinkCheckReport } from '../../server/services/link-check.js';
import { systemActor } from '../../server/services/audit.js';
import { PUBLIC_ADDRESS_MISSING, updateSettings } from '../../server/services/settings.js';
import {
  bootstrapTestAdmin,
  call,
  closedPort,
  containing,
  expectError,
  issueToken,
  mustSignIn,
  rawRequest,
} from '../helpers/api.js';
import { corruptStored, removeStored, storedBytes } from '../helpers/blobs.js';
import { putBlob, startMirror, testBytes, type TestMirror } from '../helpers/env.js';

/** Big enough for three samples of 64 KiB (start, middle, end), and not a multiple of anything. */
const ARM_SIZE = 300 * 1024 + 17;
const X86_SIZE = 200 * 1024 + 3;

async function createImage(mirror: TestMirror, token: string, body: Record<string, unknown>): Promise<ImageView> {
  const res = await call<ImageView>(mirror.url, 'POST', '/api/v1/images', { token, json: body });
  expect(res.status, res.text).toBe(201);
  return res.body;
}

async function check(mirror: TestMirror, token: string, id: number): Promise<LinkCheckReport> {
  const res = await call<LinkCheckReport>(mirror.url, 'POST', `/api/v1/images/${id}/check`, { token });
  expect(res.status, res.text).toBe(200);
  return res.body;
}

/** Overwrites bytes of a stored blob in place: same size, different content. */
async function scribble(mirror: TestMirror, sha: string, offsets: number[]): Promise<void> {
  await corruptStored(mirror, sha, offsets);
}

describe('link check', () => {
  let m: TestMirror;
  let token: string;
  let arm: string;
  let x86: string;

  beforeAll(async () => {
    m = await startMirror();
    await updateSettings(m.runtime, systemActor, { publicUrl: m.url });
    token = await issueToken(m, 'link-check');
    arm = await putBlob(m, testBytes(ARM_SIZE, 'lc-arm'), 'Windows 11 (ARM).pvmp');
    x86 = await putBlob(m, testBytes(X86_SIZE, 'lc-x86'), 'Windows 11.pvmp');
  });
  afterAll(async () => {
    await m?.close();
  });

  it('passes for both architectures served by the running server', async () => {
    const img = await createImage(m, token, {
      name: 'Both',
      arm64: { enabled: true, sha256: arm },
      x86_64: { enabled: true, sha256: x86 },
    });
    const before = Date.now();
    const report = await check(m, token, img.id);
    expect(report.ok).toBe(true);
    expect(Date.parse(report.checkedAt)).toBeGreaterThanOrEqual(before - 1000);
    expect(Object.keys(report.architectures).sort()).toEqual(['arm64', 'x86_64']);
    for (const [arch, size, url] of [
      ['arm64', ARM_SIZE, img.arm64.url],
      ['x86_64', X86_SIZE, img.x86_64.url],
    ] as const) {
      const a = report.architectures[arch]!;
      expect(a.url).toBe(url);
      expect(a.url!.startsWith(`${m.url}/d/`)).toBe(true);
      expect(a.ok).toBe(true);
      const steps = a.steps;
      expect(steps.every((s) => s.ok)).toBe(true);
      expect(steps.map((s) => s.name).slice(0, 4)).toEqual(['reachable', 'status', 'size', 'range support']);
      expect(steps.find((s) => s.name === 'size')!.detail).toBe(`${size} bytes`);
      // Start, middle and end samples, each compared by hash.
      const samples = steps.filter((s) => s.name.startsWith('bytes '));
      expect(samples.map((s) => s.name)).toEqual([
        `bytes 0-65535`,
        `bytes ${Math.floor((size - 65536) / 2)}-${Math.floor((size - 65536) / 2) + 65535}`,
        `bytes ${size - 65536}-${size - 1}`,
      ]);
      for (const s of samples) expect(s.detail).toMatch(/matches$/);
    }
  });

  it('checks only enabled architectures, and fails when none is enabled', async () => {
    const armOnly = await createImage(m, token, {
      name: 'Arm only',
      arm64: { enabled: true, sha256: arm },
      x86_64: { enabled: false, sha256: x86 },
    });
    const report = await check(m, token, armOnly.id);
    expect(report.ok).toBe(true);
    expect(Object.keys(report.architectures)).toEqual(['arm64']);
    const none = await createImage(m, token, { name: 'None enabled' });
    expect(await check(m, token, none.id)).toMatchObject({ ok: false, architectures: {} });
  });

  it('reports connection refused when the public URL points at a closed port', async () => {
    const port = await closedPort();
    const wrong = await startMirror({ publicUrl: `http://127.0.0.1:${port}` });
    try {
      const t = await issueToken(wrong, 'lc');
      const sha = await putBlob(wrong, testBytes(4096, 'lc-closed'), 'closed.pvmp');
      const img = await createImage(wrong, t, { name: 'Closed', arm64: { enabled: true, sha256: sha } });
      expect(img.arm64.url).toBe(`http://127.0.0.1:${port}/d/${sha}/closed.pvmp`);
      const report = await check(wrong, t, img.id);
      expect(report.ok).toBe(false);
      expect(report.architectures.arm64!.ok).toBe(false);
      expect(report.architectures.arm64!.steps).toEqual([
        { name: 'reachable', ok: false, detail: containing('connection refused') },
      ]);
      expect(report.architectures.arm64!.steps[0]!.detail).toContain(`127.0.0.1:${port}`);
    } finally {
      await wrong.close();
    }
  });

  it('fails the sampled-bytes step when the URL serves a changed file of the same size', async () => {
    // Two nodes: "remote" is where MIRROR_PUBLIC_URL points (what Macs reach); its copy of the
    // package was changed on disk after import. The checking node has the intact package.
    const data = testBytes(ARM_SIZE, 'lc-changed');
    const remote = await startMirror();
    const local = await startMirror({ publicUrl: remote.url });
    try {
      const sha = await putBlob(remote, data, 'changed.pvmp');
      expect(await putBlob(local, data, 'changed.pvmp')).toBe(sha);
      const middle = Math.floor((ARM_SIZE - 65536) / 2) + 10;
      await scribble(remote, sha, [middle]);
      expect((await storedBytes(remote, sha))?.length).toBe(ARM_SIZE);

      const t = await issueToken(local, 'lc');
      const img = await createImage(local, t, { name: 'Changed remotely', arm64: { enabled: true, sha256: sha } });
      expect(img.arm64.url!.startsWith(`${remote.url}/d/${sha}/`)).toBe(true);
      const report = await check(local, t, img.id);
      expect(report.ok).toBe(false);
      const steps = report.architectures.arm64!.steps;
      // Status, size and ranges are all fine: only the content gives it away, and only where it changed.
      expect(steps.filter((s) => !s.name.startsWith('bytes ')).every((s) => s.ok)).toBe(true);
      const samples = steps.filter((s) => s.name.startsWith('bytes '));
      expect(samples.map((s) => s.ok)).toEqual([true, false, true]);
      expect(samples[1]!.detail).toMatch(/^sample hashes to [0-9a-f]{64}, the stored package to [0-9a-f]{64}$/);
    } finally {
      await local.close();
      await remote.close();
    }
  });

  it('fails once the integrity check has found a package changed on this node’s disk', async () => {
    const sha = await putBlob(m, testBytes(X86_SIZE, 'lc-rot'), 'rot.pvmp');
    const img = await createImage(m, token, { name: 'Rotting', x86_64: { enabled: true, sha256: sha } });
    await scribble(m, sha, [0]);
    const verified = await call(m.url, 'POST', '/api/v1/verify', { token, json: { sha256: sha, wait: true } });
    expect(verified.body).toEqual({ results: { [sha]: 'corrupt' } });
    const report = await check(m, token, img.id);
    expect(report.ok).toBe(false);
    const steps = report.architectures.x86_64!.steps;
    expect(steps[0]).toMatchObject({ name: 'reachable', ok: true });
    expect(steps.find((s) => s.name === 'status')).toEqual({
      name: 'status',
      ok: false,
      detail: 'expected 200, got 503',
    });
  });

  it('fails when the package file was deleted behind the mirror’s back', async () => {
    const sha = await putBlob(m, testBytes(X86_SIZE, 'lc-deleted'), 'deleted.pvmp');
    const img = await createImage(m, token, { name: 'Deleted file', x86_64: { enabled: true, sha256: sha } });
    expect((await check(m, token, img.id)).ok).toBe(true);
    await removeStored(m, sha);
    const report = await check(m, token, img.id);
    expect(report.ok).toBe(false);
    expect(report.architectures.x86_64!.ok).toBe(false);
    // Either the link itself answers 503 (the download handler noticed), or, if HEAD does not
    // open the file, reading the samples finds it gone: both are a failed check naming the cause.
    const failed = report.architectures.x86_64!.steps.filter((s) => !s.ok);
    expect(failed.length).toBeGreaterThan(0);
    expect(
      failed.some(
        (s) =>
          (s.name === 'status' && s.detail === 'expected 200, got 503') ||
          (s.name === 'sampled bytes' && s.detail === 'the stored package file is missing'),
      ),
    ).toBe(true);
    // And a Mac would get a clean 503, not a truncated download.
    expect((await fetch(img.x86_64.url!)).status).toBe(503);
  });

  it('answers 404 for an unknown image and 401 without credentials', async () => {
    expectError(await call(m.url, 'POST', '/api/v1/images/424242/check', { token }), 404, 'NOT_FOUND');
    expectError(await call(m.url, 'POST', '/api/v1/images/1/check'), 401, 'UNAUTHORIZED');
  });
});

describe('link check: where it runs and what it tells the admin', () => {
  let m: TestMirror;
  let token: string;
  let sha: string;

  beforeAll(async () => {
    m = await startMirror();
    token = await issueToken(m, 'lc-address');
    sha = await putBlob(m, testBytes(ARM_SIZE, 'lc-address'), 'Windows 11 (ARM).pvmp');
  });
  afterAll(async () => {
    await m?.close();
  });

  const setAddress = (publicUrl: string | null) => updateSettings(m.runtime, systemActor, { publicUrl });

  it('checks nothing while no public address is set, and says what is missing', async () => {
    await setAddress(null);
    const img = await createImage(m, token, { name: 'No address', arm64: { enabled: true, sha256: sha } });
    expect(img.arm64.url).toBeNull();
    const report = await check(m, token, img.id);
    expect(report).toMatchObject({ ok: false, checkedFrom: 'server', publicUrl: null, warnings: [] });
    expect(report.architectures.arm64).toEqual({
      label: 'Apple silicon',
      url: null,
      ok: false,
      steps: [{ name: 'public address', ok: false, detail: PUBLIC_ADDRESS_MISSING }],
      curl: null,
    });
  });

  it('says it ran from the server, warns in its result that a loopback address is unreachable for Macs, and prints curl -I', async () => {
    await setAddress(m.url);
    const img = await createImage(m, token, { name: 'Loopback', arm64: { enabled: true, sha256: sha } });
    const report = await check(m, token, img.id);
    // Every step passes (the server reaches itself) …
    expect(report.ok).toBe(true);
    expect(report.architectures.arm64!.steps.every((s) => s.ok)).toBe(true);
    // … but the result says where it ran and that Macs cannot use this address.
    expect(report.checkedFrom).toBe('server');
    expect(report.note).toMatch(/made by the goldmirror server itself, not by a Mac/);
    expect(report.publicUrl).toBe(m.url);
    expect(report.warnings).toEqual([
      containing(`Macs cannot reach this mirror at ${m.url}: 127.0.0.1 is a loopback address`),
    ]);
    const url = `${m.url}/d/${sha}/Windows-11-ARM.pvmp`;
    expect(report.architectures.arm64!.url).toBe(url);
    expect(report.architectures.arm64!.curl).toBe(`curl -I ${url}`);
  });

  it('uses the configured public address, never the Host the admin’s request was sent to', async () => {
    await setAddress(m.url);
    const img = await createImage(m, token, { name: 'Host header', arm64: { enabled: true, sha256: sha } });
    // A Host where nothing listens: a check built from it would be refused.
    const res = await rawRequest(m.url, {
      method: 'POST',
      path: `/api/v1/images/${img.id}/check`,
      headers: { host: `127.0.0.2:${await closedPort()}`, authorization: `Bearer ${token}`, 'content-length': 0 },
      chunks: [],
    });
    expect(res.status, res.body).toBe(200);
    const report = JSON.parse(res.body) as LinkCheckReport;
    expect(report.ok).toBe(true);
    expect(report.architectures.arm64!.url).toBe(`${m.url}/d/${sha}/Windows-11-ARM.pvmp`);
  });

  it('shows the result on a GET page after the form’s POST redirects (post/redirect/get), in red for a loopback address', async () => {
    await setAddress(m.url);
    await bootstrapTestAdmin(m);
    const session = await mustSignIn(m.url);
    const img = await createImage(m, token, { name: 'Checked in the page', arm64: { enabled: true, sha256: sha } });
    const before = await call(m.url, 'GET', `/admin/images/${img.id}`, { session });
    expect(before.text).not.toContain('id="check-result"');

    const posted = await call(m.url, 'POST', `/admin/images/${img.id}/check`, {
      session,
      csrf: null,
      raw: `_csrf=${encodeURIComponent(session.csrfToken)}`,
      contentType: 'application/x-www-form-urlencoded',
    });
    expect(posted.status, posted.text).toBe(303);
    expect(posted.headers.get('location')).toBe(`/admin/images/${img.id}?done=links-checked#check`);

    // The GET shows it, and shows it again on reload without checking again.
    const page = await call(m.url, 'GET', `/admin/images/${img.id}?done=links-checked`, { session });
    expect(page.status).toBe(200);
    expect(page.text).toContain('id="check-result"');
    expect(page.text).toContain('The links answer on this server, but Macs cannot reach them.');
    expect(page.text).toContain('made by the goldmirror server itself, not by a Mac');
    expect(page.text).toMatch(
      /<p class="warn-text">Macs cannot reach this mirror at http:\/\/127\.0\.0\.1:\d+: 127\.0\.0\.1 is a loopback address/,
    );
    expect(page.text.replace(/<\/?span( class="seg")?>/g, '')).toContain(
      `curl -I ${m.url}/d/${sha}/Windows-11-ARM.pvmp`,
    );
    const stored = await m.runtime.db
      .selectFrom('link_checks')
      .select('checked_at')
      .where('image_id', '=', img.id)
      .executeTakeFirstOrThrow();
    const again = await call(m.url, 'GET', `/admin/images/${img.id}`, { session });
    expect(again.text).toContain('id="check-result"');
    const after = await m.runtime.db
      .selectFrom('link_checks')
      .select('checked_at')
      .where('image_id', '=', img.id)
      .executeTakeFirstOrThrow();
    expect(after.checked_at).toBe(stored.checked_at);
  });
});
