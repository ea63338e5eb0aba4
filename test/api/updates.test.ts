/**
 * The Parallels Desktop updates API on real servers against a fake upstream on 127.0.0.1: token scopes, a sync
 * on demand (and a client that leaves stopping it), publish/unpublish/rollback as the served feed shows them,
 * a .dmg added as the raw request body on an air-gapped mirror, and every refusal with its code.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiToken } from '../../server/services/auth.js';
import { readFeed } from '../../server/services/pd-updates/feed.js';
import type { UpdateView, UpdatesOverview } from '../../server/services/pd-updates/versions.js';
import type { UpdatesSyncReport } from '../../server/services/pd-updates/sync.js';
import { call, expectError, issueToken } from '../helpers/api.js';
import { startMirror, type TestMirror } from '../helpers/env.js';
import { fakeDmg, feedXml, sha256Of, startFakeUpstream, type FakeUpstream } from '../helpers/pd-upstream.js';
import { waitFor } from '../helpers/wait.js';

const PUBLIC = 'http://mirror.example.lan:8080';
const V1 = '26.3.2-57480';
const V2 = '26.3.3-57507';
const dmgPath = (version: string) => `/desktop/v26/${version}/ParallelsDesktop-${version}.dmg`;

async function readToken(mirror: TestMirror, name: string): Promise<string> {
  return (await createApiToken(mirror.runtime, { kind: 'system', name: 'test-setup' }, name, 'read')).token;
}

/** The versions of the feed Macs read, newest first, with each FilePath. */
async function servedFeed(mirror: TestMirror): Promise<Array<{ version: string; fileUrl: string }>> {
  const res = await fetch(`${mirror.url}/updates/parallels_updates.xml`);
  expect(res.status).toBe(200);
  return readFeed(await res.text(), 'served feed').versions.map((v) => ({ version: v.version, fileUrl: v.fileUrl }));
}

/** The bytes behind a link of the served feed, fetched from the test's own address of the mirror. */
async function download(mirror: TestMirror, link: string): Promise<Buffer> {
  const res = await fetch(link.replace(PUBLIC, mirror.url));
  expect(res.status).toBe(200);
  return Buffer.from(await res.arrayBuffer());
}

async function blobCount(mirror: TestMirror): Promise<number> {
  const row = await mirror.runtime.db
    .selectFrom('blobs')
    .select((eb) => eb.fn.countAll<string | number>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

describe('updates API with an upstream', () => {
  let upstream: FakeUpstream;
  let mirror: TestMirror;
  let admin: string;
  let reader: string;
  const v1 = fakeDmg(3 * 1024 * 1024 + 17, 'api-pd-26.3.2');
  const v2 = fakeDmg(2 * 1024 * 1024 + 5, 'api-pd-26.3.3');
  /** `token` null: no credentials at all. */
  const api = <T>(method: string, path: string, token: string | null = admin) =>
    call<T>(mirror.url, method, `/api/v1${path}`, token === null ? {} : { token });

  beforeAll(async () => {
    upstream = await startFakeUpstream();
    const url1 = upstream.setFile(dmgPath(V1), v1);
    const url2 = upstream.setFile(dmgPath(V2), v2);
    upstream.setFeed(
      26,
      feedXml([
        { version: V2, codename: 'Walnut', filePath: url2, fileSize: String(v2.length), ancestors: [] },
        { version: V1, codename: 'Walnut', filePath: url1, fileSize: String(v1.length) },
        // Listed upstream, but its file is gone: it can never be published.
        { version: '26.3.1-57400', filePath: `${upstream.url}${dmgPath('26.3.1-57400')}`, fileSize: '1' },
      ]),
    );
    // Interval 0: syncs happen only when a test asks for one.
    mirror = await startMirror({
      publicUrl: PUBLIC,
      pdUpdatesUpstream: [upstream.feedUrl(26)],
      pdUpdatesIntervalMs: 0,
    });
    admin = await issueToken(mirror, 'updates-admin');
    reader = await readToken(mirror, 'updates-read');
  });
  afterAll(async () => {
    await mirror?.close();
    await upstream?.close();
  });

  it('needs a token: none is 401, read may look but not change (403 TOKEN_SCOPE), admin may do all', async () => {
    const changes = ['/updates/sync', `/updates/${V1}/publish`, `/updates/${V1}/unpublish`, `/updates/${V1}/rollback`];
    for (const path of ['/updates', `/updates/${V1}`]) expectError(await api('GET', path, null), 401, 'UNAUTHORIZED');
    for (const path of [...changes, `/updates?version=${V1}`])
      expectError(await api('POST', path, null), 401, 'UNAUTHORIZED');

    const overview = await api<UpdatesOverview>('GET', '/updates', reader);
    expect(overview.status).toBe(200);
    expect(overview.body).toEqual({ feedUrl: `${PUBLIC}/updates/parallels_updates.xml`, upstream: [], versions: [] });
    for (const path of [...changes, `/updates?version=${V1}`]) {
      const error = expectError(await api('POST', path, reader), 403, 'TOKEN_SCOPE');
      expect(error).toMatchObject({ tokenScope: 'read', requiredScope: 'admin' });
    }
    // Refused before anything ran: no sync reached upstream.
    expect(upstream.requests).toEqual([]);
  });

  it('POST /updates/sync reads the feed and stores the files; GET shows the versions and the feed status', async () => {
    const res = await api<UpdatesSyncReport>('POST', '/updates/sync');
    expect(res.status, res.text).toBe(200);
    expect(res.body.feeds).toEqual([
      {
        url: upstream.feedUrl(26),
        ok: true,
        error: null,
        versions: [V2, V1, '26.3.1-57400'],
        added: [V2, V1, '26.3.1-57400'],
        skipped: [],
      },
    ]);
    expect(res.body.fetched.sort()).toEqual([V1, V2]);
    expect(res.body.failed).toEqual([
      { version: '26.3.1-57400', error: expect.stringContaining('HTTP 404') as string },
    ]);
    expect(res.body).toMatchObject({ alerts: [], published: [] });

    const overview = await api<UpdatesOverview>('GET', '/updates', reader);
    expect(overview.body.upstream).toEqual([
      {
        url: upstream.feedUrl(26),
        checkedAt: expect.any(String) as string,
        okAt: expect.any(String) as string,
        error: null,
        skipped: [],
      },
    ]);
    expect(overview.body.versions.map((v) => [v.version, v.state, v.published])).toEqual([
      [V2, 'stored', false],
      [V1, 'stored', false],
      ['26.3.1-57400', 'failed', false],
    ]);

    const one = await api<UpdateView>('GET', `/updates/${V1}`, reader);
    expect(one.status).toBe(200);
    expect(one.body).toMatchObject({
      version: V1,
      major: 26,
      codename: 'Walnut',
      origin: 'upstream',
      upstreamUrl: `${upstream.url}${dmgPath(V1)}`,
      fileSize: String(v1.length),
      state: 'stored',
      sha256: sha256Of(v1),
      size: v1.length,
      blobState: 'ok',
      published: false,
      listed: true,
      alert: null,
      link: `${PUBLIC}/d/${sha256Of(v1)}/ParallelsDesktop-${V1}.dmg`,
    });
  });

  it('publish, unpublish and rollback change the served feed; each answers the new state', async () => {
    expect(await servedFeed(mirror)).toEqual([]);

    const published = await api<UpdateView>('POST', `/updates/${V1}/publish`);
    expect(published.status, published.text).toBe(200);
    expect(published.body).toMatchObject({ version: V1, published: true, publishedAt: expect.any(String) as string });
    expect((await api<UpdateView>('POST', `/updates/${V2}/publish`)).body.published).toBe(true);
    const both = await servedFeed(mirror);
    expect(both.map((v) => v.version)).toEqual([V2, V1]);
    // The served FilePath downloads exactly the upstream bytes.
    expect(sha256Of(await download(mirror, both[0]!.fileUrl))).toBe(sha256Of(v2));
    expect(sha256Of(await download(mirror, both[1]!.fileUrl))).toBe(sha256Of(v1));

    const rolled = await api<{ version: UpdateView; unpublished: string[] }>('POST', `/updates/${V1}/rollback`);
    expect(rolled.status, rolled.text).toBe(200);
    expect(rolled.body).toMatchObject({ version: { version: V1, published: true }, unpublished: [V2] });
    expect((await servedFeed(mirror)).map((v) => v.version)).toEqual([V1]);
    expect((await api<UpdateView>('GET', `/updates/${V2}`)).body).toMatchObject({
      published: false,
      unpublishedAt: expect.any(String) as string,
    });

    const taken = await api<UpdateView>('POST', `/updates/${V1}/unpublish`);
    expect(taken.status).toBe(200);
    expect(taken.body).toMatchObject({ version: V1, published: false });
    expect(await servedFeed(mirror)).toEqual([]);

    // A version whose file is not stored cannot be published, nor rolled back to.
    expectError(await api('POST', '/updates/26.3.1-57400/publish'), 409, 'UPDATE_NOT_STORED');
    expectError(await api('POST', '/updates/26.3.1-57400/rollback'), 409, 'UPDATE_NOT_STORED');
    expect(await servedFeed(mirror)).toEqual([]);
  });

  it('unknown versions are 404 NOT_FOUND, text that is no version 400 VALIDATION_FAILED', async () => {
    for (const [method, path] of [
      ['GET', '/updates/99.1.2-3'],
      ['POST', '/updates/99.1.2-3/publish'],
      ['POST', '/updates/99.1.2-3/unpublish'],
      ['POST', '/updates/99.1.2-3/rollback'],
    ] as const) {
      const error = expectError(await api(method, path), 404, 'NOT_FOUND');
      expect(error.message).toContain('99.1.2-3');
    }
    for (const [method, path] of [
      ['GET', '/updates/latest'],
      ['GET', '/updates/26.3'],
      ['POST', '/updates/26.3.3/publish'],
    ] as const) {
      const error = expectError(await api(method, path), 400, 'VALIDATION_FAILED');
      expect(error.message).toContain('write it like 26.3.3-57507');
    }
    expectError(await api('POST', `/updates/${V1}/frobnicate`), 404, 'NOT_FOUND');
  });

  it('records each change in the audit log, read as sentences on the History page', async () => {
    const res = await api<Array<{ action: string; sentence: string }>>('GET', '/audit?action=updates&limit=20');
    expect(res.status).toBe(200);
    const sentences = res.body.map((e) => e.sentence).reverse();
    expect(sentences.filter((s) => s.includes(' downloaded ')).sort()).toEqual(
      [V1, V2]
        .map(
          (v) =>
            `API token “updates-admin” downloaded Parallels Desktop ${v} (${v === V1 ? '3.1' : '2.1'} MB) from ${upstream.url}${dmgPath(v)}`,
        )
        .sort(),
    );
    expect(sentences.filter((s) => !s.includes(' downloaded '))).toEqual([
      `API token “updates-admin” published Parallels Desktop ${V1}`,
      `API token “updates-admin” published Parallels Desktop ${V2}`,
      `API token “updates-admin” rolled Parallels Desktop back to ${V1}, taking ${V2} out of the update feed`,
      `API token “updates-admin” took Parallels Desktop ${V1} out of the update feed`,
    ]);
  });
});

describe('updates API on an air-gapped mirror', () => {
  let mirror: TestMirror;
  let admin: string;
  const file = fakeDmg(2 * 1024 * 1024 + 301, 'api-pd-manual');
  const add = <T>(query: string, body: Buffer | string, contentType = 'application/octet-stream') =>
    call<T>(mirror.url, 'POST', `/api/v1/updates?${query}`, { token: admin, raw: body, contentType });

  beforeAll(async () => {
    mirror = await startMirror({ publicUrl: PUBLIC });
    admin = await issueToken(mirror, 'airgap-admin');
  });
  afterAll(async () => {
    await mirror?.close();
  });

  it('sync without MIRROR_PD_UPDATES_UPSTREAM is 409 CONFLICT, saying what to set', async () => {
    const error = expectError(
      await call(mirror.url, 'POST', '/api/v1/updates/sync', { token: admin }),
      409,
      'CONFLICT',
    );
    expect(error.message).toContain('MIRROR_PD_UPDATES_UPSTREAM is empty');
    expect(error.message).toContain('POST /api/v1/updates');
  });

  it('adds a .dmg sent as the raw body (larger than the 1 MiB JSON limit), with a complete generated entry', async () => {
    const ancestor = 'desktop.26.3.2.57480.en_US.parallels.mac';
    const res = await add<UpdateView>(
      `version=${V2}&codename=Walnut&ancestor=${ancestor}&ancestor=desktop.26.3.1.57400.en_US.parallels.mac&publish=true`,
      file,
      'application/x-apple-diskimage',
    );
    expect(res.status, res.text).toBe(201);
    expect(res.body).toMatchObject({
      version: V2,
      codename: 'Walnut',
      origin: 'manual',
      upstreamUrl: null,
      fileSize: String(file.length),
      state: 'stored',
      sha256: sha256Of(file),
      size: file.length,
      published: true,
      link: `${PUBLIC}/d/${sha256Of(file)}/ParallelsDesktop-${V2}.dmg`,
    });
    const res2 = await fetch(`${mirror.url}/updates/parallels_updates.xml`);
    const xml = await res2.text();
    const served = readFeed(xml, 'served feed').versions;
    expect(served.map((v) => [v.version, v.fileSize])).toEqual([[V2, String(file.length)]]);
    expect(xml).toContain(`<Update uuid="desktop.26.3.3.57507.en_US.parallels.mac">`);
    expect(xml).toContain(`<Ancestor>${ancestor}</Ancestor>`);
    expect(xml).toContain('<StringRepresentation>Walnut</StringRepresentation>');
    expect(sha256Of(await download(mirror, served[0]!.fileUrl))).toBe(sha256Of(file));

    const history = await call<Array<{ sentence: string }>>(mirror.url, 'GET', '/api/v1/audit?action=update.add', {
      token: admin,
    });
    expect(history.body.map((e) => e.sentence)).toEqual([
      `API token “airgap-admin” added Parallels Desktop ${V2} from a file (2.1 MB) and published it`,
    ]);
  });

  it('a version already stored is 409 UPDATE_EXISTS, and nothing changes', async () => {
    const before = await blobCount(mirror);
    const error = expectError(await add(`version=${V2}`, fakeDmg(4096, 'other bytes')), 409, 'UPDATE_EXISTS');
    expect(error.message).toContain(sha256Of(file));
    expect(await blobCount(mirror)).toBe(before);
    const view = await call<UpdateView>(mirror.url, 'GET', `/api/v1/updates/${V2}`, { token: admin });
    expect(view.body.sha256).toBe(sha256Of(file));
  });

  it('bytes that are no disk image are 400 UPDATE_FILE_INVALID, and nothing is stored', async () => {
    const before = await blobCount(mirror);
    const html = Buffer.from('<html><body>Download failed, try again later</body></html>'.repeat(200));
    const error = expectError(await add(`version=${V1}`, html), 400, 'UPDATE_FILE_INVALID');
    expect(error.message).toContain('the request body is not a disk image');
    // Nearly a disk image: the trailer is there but not at the end (a truncated or padded file).
    const padded = Buffer.concat([fakeDmg(8192, 'padded'), Buffer.alloc(1024)]);
    expectError(await add(`version=${V1}`, padded), 400, 'UPDATE_FILE_INVALID');
    expect(await blobCount(mirror)).toBe(before);
    expectError(await call(mirror.url, 'GET', `/api/v1/updates/${V1}`, { token: admin }), 404, 'NOT_FOUND');
  });

  it('refuses a bad query or body type before reading the file', async () => {
    const before = await blobCount(mirror);
    const small = fakeDmg(4096, 'small');
    const bad = expectError(await add('version=26.3', small), 400, 'VALIDATION_FAILED');
    expect(bad).toMatchObject({
      message: 'invalid update file: version: must be a Parallels Desktop version like 26.3.3-57507',
      fields: [{ field: 'version', message: 'must be a Parallels Desktop version like 26.3.3-57507' }],
    });
    const missing = expectError(await add('codename=x', small), 400, 'VALIDATION_FAILED');
    expect(missing.message).toContain('version: required');
    expectError(await add(`version=${V1}&publish=yes`, small), 400, 'VALIDATION_FAILED');
    expectError(await add(`version=${V1}&locale=english`, small), 400, 'VALIDATION_FAILED');
    expectError(await add(`version=${V1}&ancestor=${encodeURIComponent('a b')}`, small), 400, 'VALIDATION_FAILED');
    const typed = expectError(await add(`version=${V1}`, small, 'multipart/form-data; boundary=x'), 400, 'BAD_REQUEST');
    expect(typed.message).toContain('application/octet-stream or application/x-apple-diskimage');
    expectError(await add(`version=${V1}`, '{}', 'application/json'), 400, 'BAD_REQUEST');
    expect(await blobCount(mirror)).toBe(before);
  });
});

describe('updates API limits', () => {
  it('an upload that would eat into MIRROR_MIN_FREE_BYTES is 507 INSUFFICIENT_STORAGE, nothing stored', async () => {
    const mirror = await startMirror({ publicUrl: PUBLIC, minFreeBytes: 2 ** 52 });
    try {
      const admin = await issueToken(mirror, 'full-admin');
      const res = await call(mirror.url, 'POST', `/api/v1/updates?version=${V1}`, {
        token: admin,
        raw: fakeDmg(64 * 1024, 'full'),
        contentType: 'application/octet-stream',
      });
      expectError(res, 507, 'INSUFFICIENT_STORAGE');
      expect(await blobCount(mirror)).toBe(0);
      expect(
        (await call<UpdatesOverview>(mirror.url, 'GET', '/api/v1/updates', { token: admin })).body.versions,
      ).toEqual([]);
    } finally {
      await mirror.close();
    }
  });

  it('a client that closes the connection stops the sync and its download', async () => {
    // A file server that sends headers and a first chunk, then nothing: the download stays in flight.
    const sockets: Array<{ closed: boolean }> = [];
    const stall = http.createServer((req, res) => {
      const seen = { closed: false };
      sockets.push(seen);
      req.socket.on('close', () => (seen.closed = true));
      res.writeHead(200, { 'Content-Type': 'application/x-apple-diskimage', 'Content-Length': 64 * 1024 * 1024 });
      res.write(Buffer.alloc(64 * 1024));
    });
    await new Promise<void>((resolve) => stall.listen(0, '127.0.0.1', resolve));
    const stallUrl = `http://127.0.0.1:${(stall.address() as AddressInfo).port}/ParallelsDesktop-27.0.0-100.dmg`;
    const upstream = await startFakeUpstream();
    upstream.setFeed(27, feedXml([{ version: '27.0.0-100', filePath: stallUrl, fileSize: String(64 * 1024 * 1024) }]));
    const mirror = await startMirror({
      publicUrl: PUBLIC,
      pdUpdatesUpstream: [upstream.feedUrl(27)],
      pdUpdatesIntervalMs: 0,
    });
    try {
      const admin = await issueToken(mirror, 'leaving-admin');
      const client = new AbortController();
      const pending = fetch(`${mirror.url}/api/v1/updates/sync`, {
        method: 'POST',
        headers: { authorization: `Bearer ${admin}` },
        signal: client.signal,
      }).catch((err: unknown) => err);
      await waitFor(() => sockets.length === 1);
      client.abort();
      expect(await pending).toBeInstanceOf(Error);
      // The mirror drops its upstream download at once instead of waiting for 64 MiB that never come.
      await waitFor(() => sockets[0]!.closed);
      const overview = await call<UpdatesOverview>(mirror.url, 'GET', '/api/v1/updates', { token: admin });
      expect(overview.body.versions.map((v) => [v.version, v.state])).toEqual([['27.0.0-100', 'waiting']]);
      expect(await blobCount(mirror)).toBe(0);
      // Only the one download: no retry went on after the client left.
      expect(sockets).toHaveLength(1);
    } finally {
      await mirror.close();
      await upstream.close();
      stall.closeAllConnections();
      await new Promise<void>((resolve) => stall.close(() => resolve()));
    }
  });
});
