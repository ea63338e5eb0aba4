/**
 * The download log against a real server: who downloaded what (client,
 * user agent, image, architecture, bytes, result, duration, rate), downloads
 * in progress, filters, paging, the batched writes, retention, the Downloads
 * page with its live fragments, and the dashboard's SVG charts.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/load.js';
import { createLogger } from '../../server/log.js';
import { openRuntime } from '../../server/runtime.js';
import { startServer } from '../../server/serve.js';
import type { Clock } from '../../server/services/deps.js';
import { createActivityTracker, LOG_BURST_ROWS, LOG_ROWS_PER_SEC } from '../../server/services/activity.js';
import { downloadCharts, pruneDownloadLog, type DownloadLogPage } from '../../server/services/download-log.js';
import type { ImageView } from '../../server/services/images.js';
import { LINK_CHECK_USER_AGENT } from '../../server/links.js';
import { bootstrapTestAdmin, call, expectError, issueToken, mustSignIn, type Session } from '../helpers/api.js';
import { fakeClock } from '../helpers/clock.js';
import { makeTempDir, putBlob, startMirror, testBytes, testConfig, type TestMirror } from '../helpers/env.js';
import { waitFor, waitForValue } from '../helpers/wait.js';

const MiB = 1024 * 1024;
const UA = 'Parallels Desktop/26.1 (Macintosh; test)';

/** A GET of a link from a chosen loopback address; resolves with status and body length. */
function download(
  base: string,
  urlPath: string,
  options: { headers?: Record<string, string>; from?: string } = {},
): Promise<{ status: number; bytes: number }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.get(
      {
        host: hostname,
        port,
        path: urlPath,
        agent: false,
        localAddress: options.from,
        headers: { 'user-agent': UA, ...options.headers },
      },
      (res) => {
        let bytes = 0;
        res.on('data', (c: Buffer) => (bytes += c.length));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
  });
}

/** Starts a GET and hands back the response once its first bytes arrived, paused, with a way to cut it. */
function startDownload(
  base: string,
  urlPath: string,
  from?: string,
): Promise<{ res: http.IncomingMessage; cut: () => void }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: hostname, port, path: urlPath, agent: false, localAddress: from, headers: { 'user-agent': UA } },
      (res) => {
        res.once('data', () => {
          res.pause();
          resolve({ res, cut: () => req.destroy() });
        });
        res.on('error', () => undefined);
      },
    );
    req.on('error', () => undefined);
    req.setTimeout(30_000, () => reject(new Error('no first byte')));
  });
}

/** Download-log rows are written on the request's close; a loaded machine may take a while. */
const SLOW = { timeoutMs: 20_000, intervalMs: 50 };

describe('download log', () => {
  let m: TestMirror;
  let token: string;
  let session: Session;
  let image: ImageView;
  let arm: string;
  let x86: string;
  const api = <T = unknown>(method: string, p: string) => call<T>(m.url, method, `/api/v1${p}`, { token });
  const link = (sha: string, name = 'Win11.pvmp') => `/d/${sha}/${name}`;

  beforeAll(async () => {
    m = await startMirror();
    await bootstrapTestAdmin(m);
    token = await issueToken(m, 'downloads');
    session = await mustSignIn(m.url);
    arm = await putBlob(m, testBytes(3 * MiB, 'log-arm'), 'Win11-arm.pvmp');
    x86 = await putBlob(m, testBytes(1 * MiB, 'log-x86'), 'Win11-x86.pvmp');
    image = (
      await call<ImageView>(m.url, 'POST', '/api/v1/images', {
        token,
        json: { name: 'Windows 11', arm64: { enabled: true, sha256: arm }, x86_64: { enabled: true, sha256: x86 } },
      })
    ).body;
  });
  afterAll(async () => {
    await m.close();
  });

  it('records a whole download, a resumed piece, a first piece and a range from 0: client, user agent, image, arch, bytes, result', async () => {
    await m.runtime.db.deleteFrom('download_log').execute();
    expect(await download(m.url, link(arm), { from: '127.0.0.2' })).toEqual({ status: 200, bytes: 3 * MiB });
    expect((await download(m.url, link(arm), { from: '127.0.0.3', headers: { range: `bytes=${MiB}-` } })).status).toBe(
      206,
    );
    expect((await download(m.url, link(x86), { from: '127.0.0.3', headers: { range: 'bytes=0-99' } })).bytes).toBe(100);
    expect((await download(m.url, link(x86), { from: '127.0.0.3', headers: { range: 'bytes=0-' } })).status).toBe(206);
    // HEAD sends no body and the mirror's own link check is not a Mac: neither is logged.
    await new Promise<void>((resolve) =>
      http.request(`${m.url}${link(arm)}`, { method: 'HEAD' }, (r) => r.resume().on('end', resolve)).end(),
    );
    await download(m.url, link(arm), { headers: { 'user-agent': LINK_CHECK_USER_AGENT, range: 'bytes=0-9' } });

    const res = await api<DownloadLogPage>('GET', '/downloads');
    expect(res.status).toBe(200);
    const rows = res.body.downloads;
    expect(
      rows.map((d) => [
        d.client,
        d.archLabel,
        d.status,
        d.firstByte,
        d.bytesPlanned,
        d.bytesSent,
        d.size,
        d.result,
        d.countsAsDownload,
      ]),
    ).toEqual([
      ['127.0.0.3', 'Intel', 206, 0, MiB, MiB, MiB, 'complete', true],
      ['127.0.0.3', 'Intel', 206, 0, 100, 100, MiB, 'resumed', false],
      ['127.0.0.3', 'Apple silicon', 206, MiB, 2 * MiB, 2 * MiB, 3 * MiB, 'resumed', true],
      ['127.0.0.2', 'Apple silicon', 200, 0, 3 * MiB, 3 * MiB, 3 * MiB, 'complete', true],
    ]);
    const whole = rows[3]!;
    expect(whole).toMatchObject({
      userAgent: UA,
      image: { id: image.id, name: 'Windows 11' },
      arch: 'arm64',
      sha256: arm,
    });
    expect(Date.parse(whole.finishedAt)).toBeGreaterThanOrEqual(Date.parse(whole.startedAt));
    expect(whole.durationMs).toBe(Date.parse(whole.finishedAt) - Date.parse(whole.startedAt));
    expect(whole.bytesPerSec).toBeGreaterThan(0);
    expect(res.body.inProgress).toEqual([]);
    expect(res.body.notLogged).toBe(0);
  });

  it('records an aborted download with the bytes that got out', async () => {
    await m.runtime.db.deleteFrom('download_log').execute();
    const big = await putBlob(m, testBytes(48 * MiB, 'log-big'), 'Big.pvmp');
    const { cut } = await startDownload(m.url, link(big, 'Big.pvmp'), '127.0.0.4');
    cut();
    const row = await waitForValue(
      async () => (await api<DownloadLogPage>('GET', '/downloads?client=127.0.0.4')).body.downloads[0],
      { what: 'the aborted row', ...SLOW },
    );
    expect(row).toMatchObject({
      client: '127.0.0.4',
      result: 'aborted',
      status: 200,
      bytesPlanned: 48 * MiB,
      countsAsDownload: false,
      image: null,
    });
    expect(row.bytesSent).toBeGreaterThan(0);
    expect(row.bytesSent).toBeLessThan(48 * MiB);
  });

  it('filters by image, architecture, client and result, pages with before, and refuses bad filters by name', async () => {
    await m.runtime.db.deleteFrom('download_log').execute();
    await download(m.url, link(arm), { from: '127.0.0.5' });
    await download(m.url, link(x86), { from: '127.0.0.6' });
    await download(m.url, link(x86), { from: '127.0.0.6', headers: { range: 'bytes=10-19' } });
    const get = async (q: string) =>
      (await api<DownloadLogPage>('GET', `/downloads${q}`)).body.downloads.map(
        (d) => `${d.client} ${d.arch} ${d.result}`,
      );
    expect(await get(`?image=${image.id}&arch=x86_64`)).toEqual([
      '127.0.0.6 x86_64 resumed',
      '127.0.0.6 x86_64 complete',
    ]);
    expect(await get('?client=127.0.0.5')).toEqual(['127.0.0.5 arm64 complete']);
    expect(await get('?result=resumed')).toEqual(['127.0.0.6 x86_64 resumed']);
    expect(await get(`?image=${image.id + 1000}`)).toEqual([]);
    const first = (await api<DownloadLogPage>('GET', '/downloads?limit=2')).body;
    expect(first.downloads).toHaveLength(2);
    expect(first.nextBefore).toBe(first.downloads[1]!.id);
    const rest = (await api<DownloadLogPage>('GET', `/downloads?limit=2&before=${first.nextBefore}`)).body;
    expect(rest.downloads.map((d) => d.client)).toEqual(['127.0.0.5']);
    expect(rest.nextBefore).toBeNull();

    const badArch = expectError(await api('GET', '/downloads?arch=ppc'), 400, 'VALIDATION_FAILED');
    expect(badArch.message).toBe('invalid filter: arch: must be arm64 or x86_64');
    expectError(await api('GET', '/downloads?result=maybe'), 400, 'VALIDATION_FAILED');
    expect(expectError(await api('GET', '/downloads?sort=size'), 400, 'VALIDATION_FAILED').message).toContain('sort');
    expectError(await call(m.url, 'GET', '/api/v1/downloads'), 401, 'UNAUTHORIZED');
  });

  it('shows downloads in progress, live, with their progress; the page and its fragments say the same', async () => {
    await m.runtime.db.deleteFrom('download_log').execute();
    const big = await putBlob(m, testBytes(48 * MiB, 'log-live'), 'Live.pvmp');
    const running = await startDownload(m.url, link(big, 'Live.pvmp'), '127.0.0.7');
    try {
      const live = await waitForValue(
        async () =>
          (await api<DownloadLogPage>('GET', '/downloads')).body.inProgress.find((d) => d.client === '127.0.0.7'),
        { what: 'the download in progress', ...SLOW },
      );
      expect(live).toMatchObject({
        client: '127.0.0.7',
        userAgent: UA,
        sha256: big,
        bytesPlanned: 48 * MiB,
        size: 48 * MiB,
        firstByte: 0,
      });
      expect(live.bytesSent).toBeGreaterThan(0);
      expect(live.bytesSent).toBeLessThanOrEqual(48 * MiB);
      expect(live.elapsedMs).toBeGreaterThanOrEqual(0);

      const page = await call(m.url, 'GET', '/admin/downloads', { session });
      expect(page.status).toBe(200);
      expect(page.text).toContain('<script src="/admin/assets/live.js" defer="">');
      expect(page.text).toContain('data-live="/admin/downloads/live?part=active"');
      expect(page.text).toMatch(/<td class="mono nowrap">127\.0\.0\.7<\/td>/);
      const fragment = await call(m.url, 'GET', '/admin/downloads/live?part=active', { session });
      expect(fragment.text).not.toContain('<html');
      expect(fragment.text).toContain('127.0.0.7');
      expect(fragment.headers.get('cache-control')).toBe('no-store');
      expect(
        (await call(m.url, 'GET', '/admin/downloads/live?part=active&client=10.9.9.9', { session })).text,
      ).toContain('No download is running right now.');
    } finally {
      running.cut();
    }
    // Once it ends it leaves the live list and is logged.
    await waitFor(async () => (await api<DownloadLogPage>('GET', '/downloads')).body.inProgress.length === 0, {
      what: 'the end of the download',
      ...SLOW,
    });
    const finished = await call(m.url, 'GET', '/admin/downloads/live?part=finished', { session });
    expect(finished.text).toContain('127.0.0.7');
    expect(finished.text).toContain('aborted');
    expect(finished.text).toContain(UA);
  });

  it('renders the Downloads page with filters, result badges and a 400 for a bad filter', async () => {
    await m.runtime.db.deleteFrom('download_log').execute();
    await download(m.url, link(arm), { from: '127.0.0.8' });
    await download(m.url, link(arm), { from: '127.0.0.8', headers: { range: `bytes=${2 * MiB}-` } });
    const page = await call(m.url, 'GET', `/admin/downloads?image=${image.id}&arch=arm64&result=&client=`, { session });
    expect(page.status).toBe(200);
    expect(page.text).toContain(`<option value="${image.id}" selected="">Windows 11</option>`);
    expect(page.text).toContain('<option value="arm64" selected="">Apple silicon</option>');
    expect(page.text).toContain('<option value="127.0.0.8"></option>');
    expect(page.text).toContain('<span class="badge ok">complete</span>');
    expect(page.text).toContain('<span class="badge neutral">resumed piece</span>');
    expect(page.text).toContain('Kept for 90 days.');
    expect(page.text).toContain(`<a href="/admin/images/${image.id}">Windows 11</a>`);
    const bad = await call(m.url, 'GET', '/admin/downloads?arch=sparc', { session });
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('invalid filter: arch: must be arm64 or x86_64');
  });

  it('draws the dashboard charts as inline SVG with titles, from the log', async () => {
    await m.runtime.db.deleteFrom('download_log').execute();
    await download(m.url, link(arm), { from: '127.0.0.9' });
    const dashboard = await call(m.url, 'GET', '/admin', { session });
    expect(dashboard.status).toBe(200);
    const svg = /<svg class="chart"[^>]*id="chart-bytes"[\s\S]*?<\/svg>/.exec(dashboard.text)?.[0] ?? '';
    expect(svg).toContain('role="img"');
    expect(svg).toContain('aria-labelledby="chart-bytes-title chart-bytes-desc"');
    expect(svg).toContain('<title id="chart-bytes-title">Bytes served per hour, last 7 days</title>');
    expect(svg).toMatch(
      /<desc id="chart-bytes-desc">3\.1 MB in total; the busiest hour was \d{4}-\d\d-\d\d \d\d:00 UTC with 3\.1 MB\.<\/desc>/,
    );
    expect(svg.match(/<rect class="chart-bar"/g)).toHaveLength(1);
    expect(svg).toMatch(/<title>\d{4}-\d\d-\d\d \d\d:00 UTC: 3\.1 MB<\/title>/);
    expect(dashboard.text).toContain('<desc id="chart-downloads-desc">1 finished download in 7 days:');
    expect(dashboard.text).not.toMatch(/<script(?![^>]*\bsrc=)/);
    expect(dashboard.text).not.toMatch(/\son[a-z]+=/i);
  });

  it('buckets bytes by hour and finished downloads by day, UTC, over exactly the last week', async () => {
    const db = m.runtime.db;
    await db.deleteFrom('download_log').execute();
    const now = Date.parse('2026-11-25T10:30:00Z');
    const row = (finishedAt: string, bytes: number, coversEnd: 0 | 1) => ({
      started_at: Date.parse(finishedAt) - 1000,
      finished_at: Date.parse(finishedAt),
      duration_ms: 1000,
      sha256: arm,
      image_id: null,
      image_name: null,
      arch: null,
      client: '10.0.0.1',
      user_agent: '',
      status: 200,
      first_byte: 0,
      bytes_planned: bytes,
      bytes_sent: bytes,
      size: bytes,
      result: 'complete' as const,
      covers_end: coversEnd,
    });
    await db
      .insertInto('download_log')
      .values([
        row('2026-11-25T10:05:00Z', 100, 1),
        row('2026-11-25T10:59:00Z', 50, 0),
        row('2026-11-25T07:00:00Z', 7, 1),
        row('2026-11-18T11:00:00Z', 3, 1), // the first hour of the window
        row('2026-11-18T10:59:59Z', 1000, 1), // one second too old
        row('2026-11-19T00:00:00Z', 9, 1),
      ])
      .execute();
    const charts = await downloadCharts({ db, clock: fakeClock(now) });
    expect(charts.hourlyBytes).toHaveLength(168);
    expect(charts.hourlyBytes[0]).toEqual({ start: '2026-11-18T11:00:00.000Z', bytes: 3 });
    expect(charts.hourlyBytes[167]).toEqual({ start: '2026-11-25T10:00:00.000Z', bytes: 150 });
    expect(charts.hourlyBytes[164]).toEqual({ start: '2026-11-25T07:00:00.000Z', bytes: 7 });
    expect(charts.hourlyBytes.reduce((n, h) => n + h.bytes, 0)).toBe(3 + 150 + 7 + 9);
    expect(charts.dailyDownloads).toEqual([
      { day: '2026-11-19', downloads: 1 },
      { day: '2026-11-20', downloads: 0 },
      { day: '2026-11-21', downloads: 0 },
      { day: '2026-11-22', downloads: 0 },
      { day: '2026-11-23', downloads: 0 },
      { day: '2026-11-24', downloads: 0 },
      { day: '2026-11-25', downloads: 2 },
    ]);
  });
});

describe('download log writes and retention', () => {
  it('writes rows in batches, off the download path: nothing until the flush, then all of them', async () => {
    const m = await startMirror();
    try {
      const tracker = createActivityTracker(m.runtime);
      const base = {
        sha256: 'a'.repeat(64),
        imageId: null,
        imageName: null,
        arch: null,
        client: '10.0.0.9',
        userAgent: 'x',
        status: 200,
        firstByte: 0,
        bytesPlanned: 10,
        size: 10,
        progress: () => 0,
      };
      for (let i = 0; i < 3; i += 1)
        tracker
          .downloadStarted({ ...base, startedAt: Date.now() })
          .finish({ bytesSent: 10, complete: true, coversEnd: true });
      expect(tracker.liveDownloads()).toEqual([]);
      const count = async () =>
        Number(
          (
            await m.runtime.db
              .selectFrom('download_log')
              .select((eb) => eb.fn.countAll().as('n'))
              .executeTakeFirstOrThrow()
          ).n,
        );
      expect(await count()).toBe(0);
      await tracker.flush();
      expect(await count()).toBe(3);
      await tracker.close();
    } finally {
      await m.close();
    }
  });

  it('logs at most a burst and then LOG_ROWS_PER_SEC rows a second, and counts the rest', async () => {
    const m = await startMirror();
    try {
      const clock = fakeClock(1_000_000);
      const tracker = createActivityTracker({ ...m.runtime, clock });
      const finishOne = () =>
        tracker
          .downloadStarted({
            startedAt: clock.now(),
            sha256: 'c'.repeat(64),
            imageId: null,
            imageName: null,
            arch: null,
            client: '10.6.6.6',
            userAgent: 'flood',
            status: 206,
            firstByte: 0,
            bytesPlanned: 1,
            size: 10,
            progress: () => 0,
          })
          .finish({ bytesSent: 1, complete: true, coversEnd: false });
      for (let i = 0; i < LOG_BURST_ROWS + 500; i += 1) finishOne();
      expect(tracker.unloggedDownloads()).toBe(500);
      clock.advance(2_000); // two seconds refill 2 × LOG_ROWS_PER_SEC
      for (let i = 0; i < 3 * LOG_ROWS_PER_SEC; i += 1) finishOne();
      expect(tracker.unloggedDownloads()).toBe(500 + LOG_ROWS_PER_SEC);
      await tracker.flush();
      const rows = Number(
        (
          await m.runtime.db
            .selectFrom('download_log')
            .select((eb) => eb.fn.countAll().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      );
      expect(rows).toBe(LOG_BURST_ROWS + 2 * LOG_ROWS_PER_SEC);
      await tracker.close();
    } finally {
      await m.close();
    }
  });

  it('prunes rows past the retention in batches, and the server runs it as an hourly job', async () => {
    const dir = await makeTempDir();
    const config = testConfig(dir, { downloadLogRetentionMs: 7 * 86_400_000 });
    const timers: Array<{ ms: number; fn: () => void }> = [];
    let now = Date.parse('2026-11-25T12:00:00Z');
    const clock: Clock = {
      now: () => now,
      setTimeout(fn, ms) {
        const t = { ms, fn };
        timers.push(t);
        return { cancel: () => timers.splice(timers.indexOf(t), 1) };
      },
    };
    const runtime = await openRuntime(config, createLogger('silent'), { clock });
    const server = await startServer(runtime);
    try {
      const values = Array.from({ length: 12_000 }, (_, i) => ({
        started_at: 0,
        finished_at: i < 11_000 ? now - 8 * 86_400_000 : now - 86_400_000,
        duration_ms: 0,
        sha256: 'b'.repeat(64),
        image_id: null,
        image_name: null,
        arch: null,
        client: '10.0.0.1',
        user_agent: '',
        status: 200,
        first_byte: 0,
        bytes_planned: 1,
        bytes_sent: 1,
        size: 1,
        result: 'complete' as const,
        covers_end: 1 as const,
      }));
      for (let i = 0; i < values.length; i += 500)
        await runtime.db
          .insertInto('download_log')
          .values(values.slice(i, i + 500))
          .execute();
      const prune = timers.find((t) => t.ms === 3_600_000);
      expect(prune).toBeDefined();
      now += 3_600_000;
      timers.splice(timers.indexOf(prune!), 1);
      prune!.fn();
      const left = await waitForValue(
        async () => {
          const n = Number(
            (
              await runtime.db
                .selectFrom('download_log')
                .select((eb) => eb.fn.countAll().as('n'))
                .executeTakeFirstOrThrow()
            ).n,
          );
          return n === 1000 ? n : undefined;
        },
        { what: 'the prune job', ...SLOW },
      );
      expect(left).toBe(1000);
      // Retention 0 keeps everything.
      const later = { db: runtime.db, clock: fakeClock(now + 1e12) };
      expect(await pruneDownloadLog(later, 0)).toBe(0);
      expect(await pruneDownloadLog(later, 1)).toBe(1000);
    } finally {
      await server.close(1000);
      await runtime.close();
    }
  });

  it('reads the retention setting from MIRROR_DOWNLOAD_LOG_RETENTION (default 90 days)', () => {
    expect(loadConfig({ env: {} }).downloadLogRetentionMs).toBe(90 * 86_400_000);
    expect(loadConfig({ env: { MIRROR_DOWNLOAD_LOG_RETENTION: '14d' } }).downloadLogRetentionMs).toBe(14 * 86_400_000);
    expect(() => loadConfig({ env: { MIRROR_DOWNLOAD_LOG_RETENTION: 'soon' } })).toThrow(
      /MIRROR_DOWNLOAD_LOG_RETENTION/,
    );
  });
});
