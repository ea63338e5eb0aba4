/**
 * Groups as CSV over the real API and the admin pages: RFC 4180 export with
 * formula cells neutralised, round trip, all-or-nothing import with
 * line-numbered problems, conflicts with the mirror, caps; and the groups
 * pages' confirmations and empty states.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { GroupCsvReport } from '../../server/services/groups-csv.js';
import type { GroupView } from '../../server/services/groups.js';
import type { ImageView } from '../../server/services/images.js';
import {
  bootstrapTestAdmin,
  call,
  expectError,
  issueToken,
  mustSignIn,
  rawRequest,
  type Session,
} from '../helpers/api.js';
import { putBlob, startMirror, testBytes, type TestMirror } from '../helpers/env.js';

interface Problem {
  line: number;
  column?: string;
  message: string;
}

describe('groups as CSV', () => {
  let m: TestMirror;
  let token: string;
  let session: Session;
  let win: ImageView;
  let mac: ImageView;
  const api = <T = unknown>(method: string, p: string, json?: unknown) =>
    call<T>(m.url, method, `/api/v1${p}`, { token, json });
  const importCsv = (csv: string | Buffer, query = '') =>
    call<GroupCsvReport>(m.url, 'POST', `/api/v1/groups.csv${query}`, { token, raw: csv, contentType: 'text/csv' });
  const state = async () =>
    (
      await m.runtime.db
        .selectFrom('groups')
        .select(['id', 'name', 'license_key', 'is_primary', 'image_id'])
        .orderBy('id')
        .execute()
    ).map((g) => ({ ...g }));
  const group = (name: string, extra: Record<string, unknown> = {}) =>
    api<GroupView>('POST', '/groups', { name, ...extra });

  beforeAll(async () => {
    m = await startMirror();
    await bootstrapTestAdmin(m);
    token = await issueToken(m, 'csv');
    session = await mustSignIn(m.url);
    const sha = await putBlob(m, testBytes(4096, 'csv-image'), 'csv.pvmp');
    win = (
      await api<ImageView>('POST', '/images', { name: 'Windows 11, Corporate', arm64: { enabled: true, sha256: sha } })
    ).body;
    mac = (await api<ImageView>('POST', '/images', { name: 'Build "agents"', arm64: { enabled: true, sha256: sha } }))
      .body;
  });
  afterAll(async () => {
    await m.close();
  });
  beforeEach(async () => {
    await m.runtime.db.deleteFrom('groups').execute();
    await m.runtime.db.deleteFrom('audit_log').execute();
  });

  it('exports RFC 4180 CSV: BOM, header, CRLF, quoting, yes/no, image names, formula cells neutralised', async () => {
    await group('Sales', { licenseKey: 'KEY-1', primary: true, imageId: win.id });
    await group('=HYPERLINK("http://evil")', { licenseKey: '-ABC' });
    await group('Design, "EMEA"', { imageId: mac.id });
    await group('@ops');
    const res = await api('GET', '/groups.csv');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/csv; charset=utf-8; header=present');
    expect(res.headers.get('content-disposition')).toMatch(
      /^attachment; filename="goldmirror-groups-\d{4}-\d\d-\d\d\.csv"$/,
    );
    const bytes = Buffer.from(
      await (
        await fetch(`${m.url}/api/v1/groups.csv`, { headers: { authorization: `Bearer ${token}` } })
      ).arrayBuffer(),
    );
    expect(bytes.subarray(0, 3)).toEqual(Buffer.from([0xef, 0xbb, 0xbf]));
    expect(bytes.subarray(3).toString('utf8')).toBe(
      'name,license_key,primary,image\r\n' +
        `"'=HYPERLINK(""http://evil"")",'-ABC,no,\r\n` +
        "'@ops,,no,\r\n" +
        '"Design, ""EMEA""",,no,"Build ""agents"""\r\n' +
        'Sales,KEY-1,yes,"Windows 11, Corporate"\r\n',
    );
    // No cell a spreadsheet would run as a formula.
    const cells = res.text.split('\r\n').flatMap((line) => line.split(','));
    expect(cells.filter((c) => /^[=+\-@]/.test(c))).toEqual([]);
  });

  it('round-trips: export, delete everything, import the file: the same groups, assignments and odd names', async () => {
    await group('Sales', { licenseKey: 'KEY-1', primary: true, imageId: win.id });
    await group('+Plus -minus', { licenseKey: '@KEY' });
    await group("'=quoted already");
    await group('Multi\u00adline Équipe, "QA"', { imageId: mac.id });
    const before = (await api<GroupView[]>('GET', '/groups')).body.map(({ name, licenseKey, primary, imageId }) => ({
      name,
      licenseKey,
      primary,
      imageId,
    }));
    const csv = (await api('GET', '/groups.csv')).text;
    await m.runtime.db.deleteFrom('groups').execute();

    const res = await importCsv(csv);
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual({
      dryRun: false,
      created: expect.arrayContaining(before.map((g) => g.name)) as string[],
      updated: [],
      unchanged: [],
    });
    const after = (await api<GroupView[]>('GET', '/groups')).body.map(({ name, licenseKey, primary, imageId }) => ({
      name,
      licenseKey,
      primary,
      imageId,
    }));
    expect(after).toEqual(before);
    // Importing the same file again changes nothing.
    expect((await importCsv(csv)).body).toEqual({
      dryRun: false,
      created: [],
      updated: [],
      unchanged: after.map((g) => g.name),
    });
  });

  it('creates and updates to match the file, moving a license key and the primary flag between groups in one go', async () => {
    await group('Sales', { licenseKey: 'KEY-1', primary: true });
    await group('Design', { imageId: win.id });
    await group('Untouched', { licenseKey: 'KEY-9' });
    const res = await importCsv(
      'Name,License Key,Primary,Image\n' + // header words in any case, spaces allowed
        'sales,,no,\n' + // matched regardless of case: takes the file's spelling
        'Design,KEY-1,yes,Windows 11, Corporate\n'.replace('Windows 11, Corporate', '"Windows 11, Corporate"') +
        'Support,KEY-2,,"Build ""agents"""\n',
    );
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual({ dryRun: false, created: ['Support'], updated: ['sales', 'Design'], unchanged: [] });
    const rows = (await api<GroupView[]>('GET', '/groups')).body.map((g) => [
      g.name,
      g.licenseKey,
      g.primary,
      g.image?.name ?? null,
    ]);
    expect(rows).toEqual([
      ['Design', 'KEY-1', true, 'Windows 11, Corporate'],
      ['Support', 'KEY-2', false, 'Build "agents"'],
      ['Untouched', 'KEY-9', false, null],
      ['sales', null, false, null],
    ]);
    // Each change is in the history, marked as coming from the file.
    const audit = await m.runtime.db
      .selectFrom('audit_log')
      .select(['action', 'details'])
      .where('details', 'like', '%"source":"csv"%')
      .execute();
    expect(audit.map((a) => a.action).sort()).toEqual(['group.create', 'group.update', 'group.update']);
  });

  it('leaves out columns that are not in the file: their values stay as they are', async () => {
    await group('Sales', { licenseKey: 'KEY-1', primary: true, imageId: win.id });
    const res = await importCsv(
      'name,image\r\nSales,\r\nNew,Windows 11\r\n'.replace('Windows 11', '"Windows 11, Corporate"'),
    );
    expect(res.status, res.text).toBe(200);
    const rows = (await api<GroupView[]>('GET', '/groups')).body.map((g) => [
      g.name,
      g.licenseKey,
      g.primary,
      g.imageId,
    ]);
    expect(rows).toEqual([
      ['New', null, false, win.id],
      ['Sales', 'KEY-1', true, null],
    ]);
  });

  it('refuses a file with bad lines as a whole: 400 CSV_INVALID listing every line, nothing changed', async () => {
    await group('Keep', { licenseKey: 'KEEP' });
    const before = await state();
    const res = await importCsv(
      'name,license_key,primary,image\r\n' +
        'Good,OK-1,no,\r\n' +
        'Bad key,has space,no,\r\n' +
        ',,no,\r\n' +
        'Flag,,maybe,\r\n' +
        'too,few\r\n' +
        'GOOD,,no,\r\n',
    );
    const error = expectError(res, 400, 'CSV_INVALID');
    expect(error.message).toMatch(
      /^nothing was imported: line 3 \(license_key\): must be printable ASCII without spaces; line 4 \(name\): must not be empty/,
    );
    expect(error.problems).toEqual([
      { line: 3, column: 'license_key', message: 'must be printable ASCII without spaces' },
      { line: 4, column: 'name', message: 'must not be empty' },
      { line: 5, column: 'primary', message: '"maybe" is neither yes nor no' },
      { line: 6, message: '2 fields, but the header has 4 (name, license_key, primary, image)' },
      { line: 7, column: 'name', message: 'group "GOOD" is already on line 2 (names are compared regardless of case)' },
    ] satisfies Problem[]);
    expect(await state()).toEqual(before);
    // Problems of the lines and conflicts with the mirror come in one answer.
    const both = expectError(await importCsv('name,primary,image\r\nA,perhaps,\r\nB,no,Nope\r\n'), 400, 'CSV_INVALID');
    expect(both.problems).toEqual([
      { line: 2, column: 'primary', message: '"perhaps" is neither yes nor no' },
      { line: 3, column: 'image', message: 'no golden image named "Nope"' },
    ] satisfies Problem[]);
    expect(await state()).toEqual(before);
  });

  it('refuses broken CSV and a wrong header with the line, and unknown images with a suggestion', async () => {
    const before = await state();
    const unclosed = expectError(await importCsv('name\r\nA\r\n"B\r\nC\r\n'), 400, 'CSV_INVALID');
    expect(unclosed.problems).toEqual([{ line: 3, message: 'a quoted field is never closed (a missing ")' }]);
    const header = expectError(await importCsv('group,license\r\nA,B\r\n'), 400, 'CSV_INVALID');
    expect(header.message).toContain(
      'line 1: the header is not right: unknown columns "group", "license"; the column "name" is required',
    );
    const empty = expectError(await importCsv(''), 400, 'CSV_INVALID');
    expect(empty.message).toContain('the file is empty');
    const latin1 = expectError(await importCsv(Buffer.from('name\r\n\xc9quipe\r\n', 'latin1')), 400, 'CSV_INVALID');
    expect(latin1.message).toContain('not UTF-8');
    const image = expectError(
      await importCsv(
        'name,image\r\nA,windows 11\\, corporate\r\n'.replace('windows 11\\, corporate', '"windows 11, corporate"'),
      ),
      409,
      'CSV_CONFLICT',
    );
    expect(image.problems).toEqual([
      {
        line: 2,
        column: 'image',
        message: 'no golden image named "windows 11, corporate" (did you mean "Windows 11, Corporate"?)',
      },
    ]);
    expect(await state()).toEqual(before);
  });

  it('answers 409 CSV_CONFLICT for a second image, a license key or primary flag held elsewhere; nothing changed', async () => {
    await group('Sales', { imageId: win.id });
    await group('Holder', { licenseKey: 'HELD', primary: true });
    const before = await state();
    const res = await importCsv(
      'name,license_key,primary,image\r\n' +
        'Sales,,no,"Build ""agents"""\r\n' +
        'New,HELD,no,\r\n' +
        'Other,,yes,\r\n' +
        'Twin,DUP,no,\r\n' +
        'Twin2,DUP,no,\r\n',
    );
    const error = expectError(res, 409, 'CSV_CONFLICT');
    expect(error.problems).toEqual([
      {
        line: 2,
        column: 'image',
        message:
          'group "Sales" already has the golden image "Windows 11, Corporate"; a group can have only one, so clear its image first (an empty image cell, or Remove on the image page), then give it the new one',
      },
      { line: 3, column: 'license_key', message: 'group "Holder" (not in the file) already has this license key' },
      {
        line: 4,
        column: 'primary',
        message:
          'the primary license key is already held by group "Holder" (not in the file); only one group can have it',
      },
      { line: 6, column: 'license_key', message: 'group "Twin" (line 5) already has this license key' },
    ] satisfies Problem[]);
    expect(await state()).toEqual(before);
  });

  it('checks only with dryRun=true, and needs Content-Type text/csv', async () => {
    const report = await importCsv('name\r\nA\r\nB\r\n', '?dryRun=true');
    expect(report.body).toEqual({ dryRun: true, created: ['A', 'B'], updated: [], unchanged: [] });
    expect(await state()).toEqual([]);
    expectError(await call(m.url, 'POST', '/api/v1/groups.csv', { token, json: { name: 'A' } }), 400, 'BAD_REQUEST');
  });

  it('caps the upload at 1 MiB, with or without Content-Length, and changes nothing', async () => {
    const line = `${'x'.repeat(90)},,no,\r\n`;
    const big = `name,license_key,primary,image\r\n${line.repeat(Math.ceil((1.2 * 1024 * 1024) / line.length))}`;
    expectError(await importCsv(big), 413, 'PAYLOAD_TOO_LARGE');
    const chunked = await rawRequest(m.url, {
      method: 'POST',
      path: '/api/v1/groups.csv',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'text/csv' },
      chunks: Array.from({ length: 20 }, (_, i) =>
        i === 0 ? big.slice(0, 70_000) : big.slice(i * 70_000, (i + 1) * 70_000),
      ),
    });
    expect(chunked.status).toBe(413);
    expect(JSON.parse(chunked.body)).toMatchObject({ error: { code: 'PAYLOAD_TOO_LARGE' } });
    expect(await state()).toEqual([]);
  });

  describe('pages', () => {
    const page = (p: string) => call(m.url, 'GET', p, { session });
    const form = (p: string, fields: Record<string, string>) =>
      call(m.url, 'POST', p, {
        session,
        raw: new URLSearchParams({ _csrf: session.csrfToken, ...fields }).toString(),
        contentType: 'application/x-www-form-urlencoded',
        csrf: null,
      });

    it('says "No groups yet" on the groups page and on an image page when there are none', async () => {
      expect((await page('/admin/groups')).text).toContain(
        'No groups yet. Create the first one below, or import them from a CSV file.',
      );
      const imagePage = (await page(`/admin/images/${win.id}`)).text;
      expect(imagePage).toContain('No groups yet.');
      expect(imagePage).not.toContain('Every group already has a golden image');
      // With every group assigned, the image page says so instead.
      await group('Busy', { imageId: mac.id });
      expect((await page(`/admin/images/${win.id}`)).text).toContain('Every group already has a golden image.');
    });

    it('asks before deleting a group; a post without the confirmation only leads to the question', async () => {
      const g = (await group('Doomed', { imageId: win.id, primary: true })).body;
      const question = await page(`/admin/groups/${g.id}/delete`);
      expect(question.status).toBe(200);
      expect(question.text).toContain('Delete group Doomed?');
      expect(question.text).toContain('It holds the primary license key');
      expect(question.text).toMatch(/Its golden image <a href="\/admin\/images\/\d+">Windows 11, Corporate<\/a> stays/);
      const unconfirmed = await form(`/admin/groups/${g.id}/delete`, {});
      expect({ status: unconfirmed.status, location: unconfirmed.headers.get('location') }).toEqual({
        status: 303,
        location: `/admin/groups/${g.id}/delete`,
      });
      expect((await state()).map((r) => r.name)).toEqual(['Doomed']);
      const confirmed = await form(`/admin/groups/${g.id}/delete`, { confirm: 'yes' });
      expect({ status: confirmed.status, location: confirmed.headers.get('location') }).toEqual({
        status: 303,
        location: '/admin/groups?done=group-deleted',
      });
      expect(await state()).toEqual([]);
    });

    it('asks before removing a golden image from a group, and goes back where it came from', async () => {
      const g = (await group('Kept', { imageId: win.id })).body;
      // The image page's Remove button posts without confirm=yes: it leads to the question.
      const fromImage = await form(`/admin/groups/${g.id}/unassign`, { back: `/admin/images/${win.id}` });
      expect(fromImage.status).toBe(303);
      expect(fromImage.headers.get('location')).toBe(
        `/admin/groups/${g.id}/unassign?back=${encodeURIComponent(`/admin/images/${win.id}`)}`,
      );
      expect((await state())[0]!.image_id).toBe(win.id);
      const question = await page(fromImage.headers.get('location')!);
      expect(question.text).toContain('Remove Windows 11, Corporate from Kept?');
      expect(question.text).toContain(`<a href="/admin/images/${win.id}">Cancel</a>`);
      // A foreign "back" is not followed.
      expect((await page(`/admin/groups/${g.id}/unassign?back=https://evil.example/`)).text).toContain(
        `<a href="/admin/groups/${g.id}">Cancel</a>`,
      );
      const confirmed = await form(`/admin/groups/${g.id}/unassign`, {
        confirm: 'yes',
        back: `/admin/images/${win.id}`,
      });
      expect(confirmed.headers.get('location')).toBe(`/admin/images/${win.id}?done=group-unassigned`);
      expect((await state())[0]!.image_id).toBeNull();
    });

    it('exports from the page and imports a file posted as a form, reporting line problems on the page', async () => {
      await group('Sales', { licenseKey: 'K1' });
      const csv = await page('/admin/groups.csv');
      // (fetch's text() drops the byte order mark.)
      expect(csv.text).toBe('name,license_key,primary,image\r\nSales,K1,no,\r\n');
      const multipart = (body: string, dryRun: boolean) => {
        const boundary = '----goldmirror-test';
        const parts = [
          // The CSRF token first, as the page's form sends it (never in the URL).
          `--${boundary}\r\nContent-Disposition: form-data; name="_csrf"\r\n\r\n${session.csrfToken}\r\n`,
          ...(dryRun ? [`--${boundary}\r\nContent-Disposition: form-data; name="dryRun"\r\n\r\non\r\n`] : []),
          `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="groups.csv"\r\nContent-Type: text/csv\r\n\r\n${body}\r\n`,
          `--${boundary}--\r\n`,
        ];
        return call(m.url, 'POST', '/admin/groups/import', {
          session,
          csrf: null,
          raw: parts.join(''),
          contentType: `multipart/form-data; boundary=${boundary}`,
        });
      };
      const checked = await multipart('name\r\nSales\r\nNew\r\n', true);
      expect(checked.headers.get('location')).toBe('/admin/groups?done=groups-checked&created=1&updated=0&unchanged=1');
      expect((await page(checked.headers.get('location')!)).text).toContain(
        'The file is fine: importing it would create 1, update 0 and leave 1 group(s) unchanged. Nothing was changed.',
      );
      expect((await state()).map((r) => r.name)).toEqual(['Sales']);
      const imported = await multipart('name\r\nSales\r\nNew\r\n', false);
      expect(imported.headers.get('location')).toBe(
        '/admin/groups?done=groups-imported&created=1&updated=0&unchanged=1',
      );
      expect((await state()).map((r) => r.name)).toEqual(['Sales', 'New']);
      const bad = await multipart('name,primary\r\nA,perhaps\r\n', false);
      expect(bad.status).toBe(400);
      expect(bad.text).toContain('Nothing was imported: the file has a problem (listed below).');
      expect(bad.text).toMatch(/Line 2\s*\(primary\): &quot;perhaps&quot; is neither yes nor no/);
      expect((await state()).map((r) => r.name)).toEqual(['Sales', 'New']);
    });
  });
});
