/**
 * The readable history: audit entries as sentences with names and links,
 * sign-ins hidden unless asked for, filters by actor, kind and text, on the
 * History page, the dashboard and GET /api/v1/audit.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageView } from '../../server/services/images.js';
import type { GroupView } from '../../server/services/groups.js';
import { describeAudit, listHistory } from '../../server/services/history.js';
import { toAuditEntry } from '../../server/services/audit.js';
import { bootstrapTestAdmin, call, issueToken, mustSignIn, type Session } from '../helpers/api.js';
import { putBlob, startMirror, testBytes, type TestMirror } from '../helpers/env.js';

interface ApiEntry {
  id: number;
  actor: string;
  action: string;
  sentence: string;
}

/** The sentences of a page, as text (tags dropped, entities decoded). */
function sentencesOf(html: string): string[] {
  const list = /<ol class="history">([\s\S]*?)<\/ol>/.exec(html)?.[1] ?? '';
  return [...list.matchAll(/<li>([\s\S]*?)<\/li>/g)].map((m) =>
    m[1]!
      .replace(/<time[^>]*>[^<]*<\/time>\s*/, '')
      .replace(/<[^>]+>/g, '')
      .replace(/&quot;/g, '"')
      .replace(/&amp;/g, '&')
      .replace(/&#39;/g, "'")
      .trim(),
  );
}

describe('readable history', () => {
  let m: TestMirror;
  let token: string;
  let session: Session;
  let image: ImageView;
  let sales: GroupView;
  let arm: string;
  const api = <T = unknown>(method: string, p: string, json?: unknown) =>
    call<T>(m.url, method, `/api/v1${p}`, { token, json });
  const page = (p: string) => call(m.url, 'GET', p, { session });
  const form = (p: string, fields: Record<string, string>) =>
    call(m.url, 'POST', p, {
      session,
      csrf: null,
      raw: new URLSearchParams({ _csrf: session.csrfToken, ...fields }).toString(),
      contentType: 'application/x-www-form-urlencoded',
    });

  beforeAll(async () => {
    m = await startMirror();
    await bootstrapTestAdmin(m);
    token = await issueToken(m, 'hist');
    session = await mustSignIn(m.url);
    arm = await putBlob(m, testBytes(2048, 'history-arm'), 'Win11-arm.pvmp');
    image = (
      await api<ImageView>('POST', '/images', { name: 'Windows 11 Corporate', arm64: { enabled: true, sha256: arm } })
    ).body;
    sales = (await api<GroupView>('POST', '/groups', { name: 'Sales' })).body;
    // The admin assigns on the image page, changes the image, then removes the assignment after the confirmation.
    expect((await form(`/admin/images/${image.id}/assign`, { groupId: String(sales.id) })).status).toBe(303);
    await api('PATCH', `/images/${image.id}`, { description: 'Q4 build', x86_64: { enabled: false } });
    expect(
      (await form(`/admin/groups/${sales.id}/unassign`, { confirm: 'yes', back: `/admin/images/${image.id}` })).status,
    ).toBe(303);
    await api('PATCH', `/groups/${sales.id}`, { name: 'Sales EMEA', primary: true, licenseKey: 'KEY-1' });
    const doomed = (await api<GroupView>('POST', '/groups', { name: 'Temp', imageId: image.id })).body;
    await api('DELETE', `/groups/${doomed.id}`);
  });
  afterAll(async () => {
    await m.close();
  });

  it('tells each change as a sentence with names, newest first, and links to what still exists', async () => {
    const res = await page('/admin/history');
    expect(res.status).toBe(200);
    expect(sentencesOf(res.text)).toEqual([
      'API token “hist” deleted group Temp',
      'API token “hist” created group Temp → Windows 11 Corporate',
      'API token “hist” renamed group “Sales” to Sales EMEA, set the license key of Sales EMEA and made Sales EMEA the primary license key group',
      'admin removed Windows 11 Corporate from Sales EMEA',
      'API token “hist” changed golden image Windows 11 Corporate: description, Intel disabled',
      'admin assigned Sales EMEA → Windows 11 Corporate',
      'API token “hist” created group Sales EMEA',
      'API token “hist” created golden image Windows 11 Corporate',
      'test-setup created API token “hist”',
      'MIRROR_ADMIN_PASSWORD created user admin',
    ]);
    expect(res.text).toContain(
      `admin assigned <a href="/admin/groups/${sales.id}">Sales EMEA</a> → <a href="/admin/images/${image.id}">Windows 11 Corporate</a>`,
    );
    // A deleted group is named as it was, without a link.
    expect(res.text).toMatch(/deleted group Temp<\/li>/);
  });

  it('hides sign-ins unless asked for', async () => {
    expect((await page('/admin/history')).text).not.toContain('signed in');
    const withLogins = sentencesOf((await page('/admin/history?logins=1')).text);
    expect(withLogins.filter((s) => s.includes('signed in'))).toEqual(['admin signed in from 127.0.0.1']);
    // Asking for sign-ins as the kind of change shows them too.
    expect(sentencesOf((await page('/admin/history?action=signins')).text)).toEqual(['admin signed in from 127.0.0.1']);
  });

  it('filters by who, by kind of change and by text in the sentence (names looked up, not only recorded)', async () => {
    expect(sentencesOf((await page('/admin/history?actor=user%3Aadmin')).text)).toEqual([
      'admin removed Windows 11 Corporate from Sales EMEA',
      'admin assigned Sales EMEA → Windows 11 Corporate',
    ]);
    const images = sentencesOf((await page('/admin/history?action=images')).text);
    expect(images).toEqual([
      'API token “hist” changed golden image Windows 11 Corporate: description, Intel disabled',
      'API token “hist” created golden image Windows 11 Corporate',
    ]);
    // The image.update entry recorded no name: the text filter still finds it by today's name.
    expect(sentencesOf((await page('/admin/history?q=corporate+description')).text)).toEqual([
      'API token “hist” changed golden image Windows 11 Corporate: description, Intel disabled',
    ]);
    const none = await page('/admin/history?q=nothing-like-this');
    expect(none.text).toContain('Nothing in the history matches these filters.');
    const filterForm = (await page('/admin/history?actor=user%3Aadmin&action=groups&q=sales&logins=1')).text;
    expect(filterForm).toContain('<option value="user:admin" selected="">admin</option>');
    expect(filterForm).toContain('<option value="groups" selected="">Groups</option>');
    expect(filterForm).toContain('value="sales"');
  });

  it('answers GET /api/v1/audit with a sentence per entry and the same filters', async () => {
    const all = await api<ApiEntry[]>('GET', '/audit?limit=100');
    expect(all.status).toBe(200);
    expect(all.body.some((e) => e.action === 'session.login')).toBe(true);
    expect(all.body.find((e) => e.action === 'group.update' && e.actor === 'user:admin')).toMatchObject({
      sentence: 'admin removed Windows 11 Corporate from Sales EMEA',
    });
    const noLogins = await api<ApiEntry[]>('GET', '/audit?limit=100&logins=false');
    expect(noLogins.body.some((e) => e.action === 'session.login')).toBe(false);
    const groups = await api<ApiEntry[]>('GET', '/audit?action=group.delete');
    expect(groups.body.map((e) => e.sentence)).toEqual(['API token “hist” deleted group Temp']);
    const paged = await api<ApiEntry[]>('GET', '/audit?limit=1&action=groups');
    expect(paged.headers.get('x-next-before')).toBe(String(paged.body[0]!.id));
  });

  it('shows the newest changes as sentences on the dashboard, without sign-ins', async () => {
    const html = (await page('/admin')).text;
    const recent = sentencesOf(html);
    expect(recent[0]).toBe('API token “hist” deleted group Temp');
    expect(recent.some((s) => s.includes('signed in'))).toBe(false);
    expect(html).toContain('<a href="/admin/history">Full history →</a>');
  });

  it('reads entries written before names were recorded, and deleted things by their recorded name', async () => {
    const db = m.runtime.db;
    const now = Date.now();
    const insert = async (action: string, target: string, details: unknown) =>
      (
        await db
          .insertInto('audit_log')
          .values({ at: now, actor: 'cli:root', action, target, details: JSON.stringify(details) })
          .returning('id')
          .executeTakeFirstOrThrow()
      ).id;
    const ids = [
      await insert('group.update', `group:${sales.id}`, { imageId: image.id }),
      await insert('image.update', 'image:999', { arm64: { sha256: arm } }),
      await insert('image.delete', 'image:998', { name: 'Old image', groups: ['A', 'B'] }),
      await insert('blob.corrupt', `blob:${arm}`, { detail: 'sha256 mismatch', quarantined: true }),
      await insert('settings.change', 'settings', {}),
    ];
    const rows = await db.selectFrom('audit_log').selectAll().where('id', 'in', ids).orderBy('id').execute();
    const described = await describeAudit({ db }, rows.map(toAuditEntry));
    expect(described.map((e) => e.sentence)).toEqual([
      'root (command line) assigned Sales EMEA → Windows 11 Corporate',
      'root (command line) changed golden image golden image #999: Apple silicon package → Win11-arm.pvmp',
      'root (command line) deleted golden image Old image; groups left without an image: A, B',
      'root (command line) found package Win11-arm.pvmp corrupt: sha256 mismatch; it was moved to quarantine',
      'root (command line) did settings.change on settings',
    ]);
    expect(described[1]!.parts.find((p) => p.text === 'Win11-arm.pvmp')).toEqual({
      text: 'Win11-arm.pvmp',
      href: `/admin/blobs/${arm}`,
    });
    // Text filtering reaches past a full batch of non-matching rows.
    await db
      .insertInto('audit_log')
      .values(
        Array.from({ length: 450 }, () => ({
          at: now,
          actor: 'system:goldmirror',
          action: 'token.create',
          target: 'token:filler',
          details: '{}',
        })),
      )
      .execute();
    const found = await listHistory({ db }, { text: 'left without', limit: 5 });
    expect(found.entries.map((e) => e.sentence)).toEqual([
      'root (command line) deleted golden image Old image; groups left without an image: A, B',
    ]);
  });
});
