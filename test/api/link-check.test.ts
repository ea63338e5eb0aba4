/**
 * POST /api/v1/images/:id/check: the server fetches its own Download URLs
 * the way a Mac would (HEAD, then ranged GETs), against the real listening
 * server, and compares sampled bytes with the stored package.
 */
import fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sha256 } from '../../storage/digest.js';
import type { ImageView } from '../../server/services/images.js';
import type { LinkCheckReport } from '../../server/services/link-check.js';
import { call, closedPort, containing, expectError, issueToken } from '../helpers/api.js';
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

/** Overwrites bytes of a stored blob file in place: same size, different content. */
async function scribble(mirror: TestMirror, sha: string, offsets: number[]): Promise<void> {
  const file = mirror.runtime.store.layout.blobFile(sha as Sha256);
  await fs.chmod(file, 0o644);
  const handle = await fs.open(file, 'r+');
  try {
    for (const offset of offsets) {
      const one = Buffer.alloc(1);
      await handle.read(one, 0, 1, offset);
      await handle.write(Buffer.from([one[0]! ^ 0xff]), 0, 1, offset);
    }
  } finally {
    await handle.close();
  }
}

describe('link check', () => {
  let m: TestMirror;
  let token: string;
  let arm: string;
  let x86: string;

  beforeAll(async () => {
    m = await startMirror();
    token = await issueToken(m, 'link-check');
    arm = await putBlob(m, testBytes(ARM_SIZE, 'lc-arm'), 'Windows 11 (ARM).pvmp');
    x86 = await putBlob(m, testBytes(X86_SIZE, 'lc-x86'), 'Windows 11.pvmp');
  });
  afterAll(async () => {
    await m?.close();
  });

  it('passes for both architectures served by the running server', async () => {
    const img = await createImage(m, token, { name: 'Both', arm64: { enabled: true, sha256: arm }, x86_64: { enabled: true, sha256: x86 } });
    const before = Date.now();
    const report = await check(m, token, img.id);
    expect(report.ok).toBe(true);
    expect(Date.parse(report.checkedAt)).toBeGreaterThanOrEqual(before - 1000);
    expect(Object.keys(report.architectures).sort()).toEqual(['arm64', 'x86_64']);
    for (const [arch, size, url] of [['arm64', ARM_SIZE, img.arm64.url], ['x86_64', X86_SIZE, img.x86_64.url]] as const) {
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
    const armOnly = await createImage(m, token, { name: 'Arm only', arm64: { enabled: true, sha256: arm }, x86_64: { enabled: false, sha256: x86 } });
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
      expect((await fs.stat(remote.runtime.store.layout.blobFile(sha as Sha256))).size).toBe(ARM_SIZE);

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
    expect(steps.find((s) => s.name === 'status')).toEqual({ name: 'status', ok: false, detail: 'expected 200, got 503' });
  });

  it('fails when the package file was deleted behind the mirror’s back', async () => {
    const sha = await putBlob(m, testBytes(X86_SIZE, 'lc-deleted'), 'deleted.pvmp');
    const img = await createImage(m, token, { name: 'Deleted file', x86_64: { enabled: true, sha256: sha } });
    expect((await check(m, token, img.id)).ok).toBe(true);
    await fs.rm(m.runtime.store.layout.blobFile(sha as Sha256));
    const report = await check(m, token, img.id);
    expect(report.ok).toBe(false);
    expect(report.architectures.x86_64!.ok).toBe(false);
    // Either the link itself answers 503 (the download handler noticed), or, if HEAD does not
    // open the file, reading the samples finds it gone: both are a failed check naming the cause.
    const failed = (report.architectures.x86_64!.steps).filter((s) => !s.ok);
    expect(failed.length).toBeGreaterThan(0);
    expect(
      failed.some(
        (s) => (s.name === 'status' && s.detail === 'expected 200, got 503') || (s.name === 'sampled bytes' && s.detail === 'the stored package file is missing'),
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
