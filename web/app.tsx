/**
 * The admin console under /admin: server-rendered pages (hono/jsx) that call
 * the same services as the JSON API. Every form works without JavaScript
 * (post, then redirect); scripts only add copy buttons and upload progress.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import busboy from 'busboy';
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { deleteCookie } from 'hono/cookie';
import type { AppDeps } from '../server/app.js';
import type { UploadServer } from '../server/http/uploads.js';
import { AppError, toAppError } from '../server/errors.js';
import { receiveFormUpload } from '../server/http/form-upload.js';
import { clientAddressReader, requireAdmin, SESSION_COOKIE, setSessionCookie, streamedFormCsrf, type AuthEnv } from '../server/http/auth.js';
import { historyActors, listHistory, type HistoryQuery } from '../server/services/history.js';
import { changePassword, createApiToken, listApiTokens, login, logout, revokeApiToken } from '../server/services/auth.js';
import { archMismatchWarnings, deleteBlob, downloadCountOf, getBlobView, listBlobViews, recentDownloads, updateBlobArch } from '../server/services/blobs.js';
import { createGroup, deleteGroup, getGroup, listGroups, updateGroup } from '../server/services/groups.js';
import { applyGroupsCsv, exportGroupsCsv, readGroupsCsv, type CsvProblem, type GroupCsvFile } from '../server/services/groups-csv.js';
import { ARCHES, ARCH_LABELS, createImage, deleteImage, getImage, listImages, updateImage, type ImageView } from '../server/services/images.js';
import { integritySummary } from '../server/services/integrity.js';
import { checkImageLinks, type LinkCheckReport } from '../server/services/link-check.js';
import { lastLinkCheck, saveLinkCheck } from '../server/services/link-check-results.js';
import { confirmPortalValues } from '../server/services/portal-changes.js';
import { resolvePublicAddress, updateSettings, type PublicAddress } from '../server/services/settings.js';
import { PublicAddressContext } from './layout.js';
import { SettingsPage } from './pages/settings.js';
import { parseId } from '../server/services/validation.js';
import { parseSha256, type Sha256 } from '../storage/digest.js';
import { AccountPage, ErrorPage, LoginPage } from './pages/auth.js';
import { BlobPage, BlobsPage, UploadPage } from './pages/blobs.js';
import { DashboardPage } from './pages/dashboard.js';
import { DownloadsPage, FinishedTable, InProgressTable } from './pages/downloads.js';
import { HistoryPage } from './pages/history.js';
import { downloadCharts, downloadFilterChoices, listDownloads, parseDownloadFilter, type DownloadFilter } from '../server/services/download-log.js';
import { GroupDeletePage, GroupEditPage, GroupsPage, GroupUnassignPage, type GroupFormValues } from './pages/groups.js';
import { ImageDeletePage, ImageFormPage, ImagePortalPage, ImagesPage, type ImageFormValues } from './pages/images.js';
import { TokensPage, type TokenFormValues } from './pages/tokens.js';

/** Fixed set of script files (never a path from the request). */
const require = createRequire(import.meta.url);
const ASSETS: Record<string, string> = {
  'copy.js': new URL('./assets/copy.js', import.meta.url).pathname,
  'upload.js': new URL('./assets/upload.js', import.meta.url).pathname,
  'image-form.js': new URL('./assets/image-form.js', import.meta.url).pathname,
  'live.js': new URL('./assets/live.js', import.meta.url).pathname,
  'tus.min.js': require.resolve('tus-js-client/dist/tus.min.js'),
};

/** Flash messages by key, so a link cannot put arbitrary text on the page. */
const FLASH: Record<string, string> = {
  'image-created': 'Golden image created.',
  'image-saved': 'Golden image saved.',
  'image-deleted': 'Golden image deleted.',
  'group-created': 'Group created.',
  'group-saved': 'Group saved.',
  'group-deleted': 'Group deleted.',
  'group-assigned': 'Group assigned.',
  'group-unassigned': 'Group no longer has a golden image.',
  'blob-deleted': 'Package deleted.',
  'blob-uploaded': 'Package stored and verified.',
  'blob-uploaded-unchecked': 'Package stored. No checksum file was given, so its SHA-256 was not compared with anything: check it against the one you expect.',
  'blob-arch-saved': 'Architecture saved.',
  'upload-discarded': 'Unfinished upload discarded; its bytes are gone.',
  'verify-started': 'Integrity checks started; this page shows their progress.',
  'verify-cancelled': 'Integrity checks cancelled.',
  'password-changed': 'Password changed.',
  'fetch-started': 'Download started; its progress is below.',
  'fetch-cancelled': 'Download cancelled; nothing was stored.',
  'token-revoked': 'API token revoked.',
  'links-checked': 'Links checked; the result is below.',
  'portal-confirmed': 'Marked as entered in the portal.',
  'settings-saved': 'Public address saved.',
  'settings-cleared': 'Public address cleared: no Download URL is offered until one is set.',
};

type WebContext = Context<AuthEnv>;

/** A text field of a parsed form ('' when absent or a file). */
function field(form: Record<string, unknown>, name: string): string {
  const value = form[name];
  return typeof value === 'string' ? value : '';
}

export function createWebApp(deps: AppDeps & { uploads: UploadServer }): Hono<AuthEnv> {
  const web = new Hono<AuthEnv>();
  // The public address, resolved once per request by providePublicAddress below; never the request's Host.
  const addresses = new WeakMap<Request, PublicAddress>();
  const addressOf = (c: Context): PublicAddress =>
    addresses.get(c.req.raw) ?? { url: null, source: 'unset', stored: null, updatedAt: null, updatedBy: null, warnings: [] };
  const base = (c: Context) => addressOf(c).url;
  const user = (c: WebContext) => c.get('session')?.username ?? c.get('actor').name;
  const csrf = (c: WebContext) => c.get('session')?.csrfToken ?? '';
  const flash = (c: Context) => FLASH[c.req.query('done') ?? ''];
  const done = (c: Context, path: string, key: string) => c.redirect(`${path}?done=${key}`, 303);
  const common = (c: WebContext) => ({ user: user(c), csrf: csrf(c), flash: flash(c) });
  const clientAddress = clientAddressReader(deps.config.trustProxy);

  // Forms are small; only the upload form streams a large body (and never buffers it).
  const formLimit = (maxSize: number) =>
    bodyLimit({
      maxSize,
      onError: () => {
        throw new AppError('PAYLOAD_TOO_LARGE', `this form accepts at most ${maxSize / 1024} KiB`);
      },
    });
  const loginLimit = formLimit(64 * 1024);
  const pageLimit = formLimit(1024 * 1024);
  // The upload form streams its body, and sign-in has its own, smaller limit.
  web.use('*', async function limitFormBodies(c, next) {
    if (c.req.path === '/admin/upload' || c.req.path === '/admin/login') return next();
    // eslint-disable-next-line @typescript-eslint/no-unsafe-argument -- hono's wildcard context type; the handler is path-agnostic
    return pageLimit(c, next);
  });

  web.get('/login', (c) => c.html(<LoginPage next={safeNext(c.req.query('next'))} />));
  web.post('/login', loginLimit, async (c) => {
    const form = await c.req.parseBody();
    const next = safeNext(field(form, 'next'));
    const username = field(form, 'username');
    try {
      const grant = await login(deps, { username, password: field(form, 'password') }, clientAddress(c));
      setSessionCookie(c, grant.token, grant.expiresAt, deps.config.publicUrl);
      return c.redirect(next, 303);
    } catch (err) {
      const e = toAppError(err);
      if (e.code === 'INTERNAL') throw err;
      const retry = e.details.retryAfterSeconds;
      if (typeof retry === 'number') c.header('Retry-After', String(retry));
      const message = e.code === 'TOO_MANY_REQUESTS' && typeof retry === 'number' ? `${e.message} (about ${retry} s)` : e.message;
      return c.html(<LoginPage next={next} error={message} username={username} />, e.status as 401);
    }
  });

  web.use(
    '*',
    requireAdmin(deps, {
      publicUrl: deps.config.publicUrl,
      onUnauthenticated: (c) => c.redirect(`/admin/login?next=${encodeURIComponent(c.req.path)}`, 303),
      formCsrf: async (c) => {
        const form = await c.req.parseBody();
        return typeof form._csrf === 'string' ? form._csrf : undefined;
      },
      // The streamed forms (upload, CSV import) check their _csrf field themselves, before any file part.
      csrfCheckedByHandler: (c) => c.req.method === 'POST' && (c.req.path === '/admin/upload' || c.req.path === '/admin/groups/import'),
    }),
  );

  // Every signed-in page's frame asks for a missing public address, or warns about an unreachable one.
  web.use('*', async function providePublicAddress(c, next) {
    const address = await resolvePublicAddress(deps);
    addresses.set(c.req.raw, address);
    const html = c.html;
    c.html = ((body: unknown, ...rest: unknown[]) =>
      (html as (...args: unknown[]) => unknown)(<PublicAddressContext.Provider value={address}>{body as string}</PublicAddressContext.Provider>, ...rest)) as typeof c.html;
    await next();
  });

  web.get('/assets/:name', async (c) => {
    const file = ASSETS[c.req.param('name')];
    if (!file) throw new AppError('NOT_FOUND', 'no such asset');
    c.header('Content-Type', 'text/javascript; charset=utf-8');
    c.header('Cache-Control', 'private, max-age=300');
    return c.body(await readFile(file, 'utf8'));
  });

  web.post('/logout', async (c) => {
    const token = c.get('sessionToken');
    if (token) await logout(deps, token);
    deleteCookie(c, SESSION_COOKIE, { path: '/' });
    return c.redirect('/admin/login', 303);
  });

  web.get('/account', (c) => c.html(<AccountPage {...common(c)} />));
  web.post('/account/password', async (c) => {
    const session = c.get('session');
    const token = c.get('sessionToken');
    if (!session || !token) throw new AppError('FORBIDDEN', 'sign in with a password to change it');
    const form = await c.req.parseBody();
    try {
      await changePassword(deps, session, token, { currentPassword: field(form, 'currentPassword'), newPassword: field(form, 'newPassword') });
      return done(c, '/admin/account', 'password-changed');
    } catch (err) {
      const e = formError(err);
      return c.html(<AccountPage user={user(c)} csrf={csrf(c)} error={e.message} fieldErrors={e.fields} />, e.status);
    }
  });

  // API tokens: a new token is shown once in the answer to the form, never in a URL.
  const tokensPage = async (c: WebContext, values: TokenFormValues, extra: { created?: Awaited<ReturnType<typeof createApiToken>>; error?: ReturnType<typeof formError> } = {}) =>
    c.html(
      <TokensPage {...common(c)} tokens={await listApiTokens(deps)} values={values} created={extra.created} error={extra.error?.message} fieldErrors={{ name: extra.error?.fields['token name'] ?? '' }} />,
      extra.error?.status ?? (extra.created ? 201 : 200),
    );
  web.get('/tokens', (c) => tokensPage(c, { name: '', scope: 'read' }));
  web.post('/tokens', async (c) => {
    const form = await c.req.parseBody();
    const values = { name: field(form, 'name'), scope: field(form, 'scope') };
    try {
      const created = await createApiToken(deps, c.get('actor'), values.name, values.scope);
      return await tokensPage(c, { name: '', scope: values.scope }, { created });
    } catch (err) {
      return tokensPage(c, values, { error: formError(err) });
    }
  });
  web.post('/tokens/:name/revoke', async (c) => {
    await revokeApiToken(deps, c.get('actor'), c.req.param('name'));
    return done(c, '/admin/tokens', 'token-revoked');
  });

  web.get('/', async (c) => {
    const [usage, blobs, images, groups, integrity, recentChanges, charts] = await Promise.all([
      deps.store.diskUsage(),
      listBlobViews(deps, base(c)),
      listImages(deps, base(c)),
      listGroups(deps),
      integritySummary(deps),
      listHistory(deps, { limit: 10 }).then((h) => h.entries),
      downloadCharts(deps),
    ]);
    const stats = await recentDownloads(deps, 10);
    const byBlob = new Map(blobs.map((b) => [b.sha256, b]));
    return c.html(
      <DashboardPage
        {...common(c)}
        data={{
          disk: { ...usage, blobBytes: blobs.reduce((n, b) => n + b.size, 0) },
          blobCount: blobs.length,
          imageCount: images.length,
          groupCount: groups.length,
          integrity,
          checks: deps.checker.status(),
          recentDownloads: stats.map((s) => ({
            sha256: s.sha256,
            name: byBlob.get(s.sha256)?.name ?? s.sha256.slice(0, 12),
            downloads: s.downloads,
            lastDownloadAt: s.lastDownloadAt,
            images: [...new Set(byBlob.get(s.sha256)?.usedBy.map((u) => u.imageName) ?? [])],
          })),
          recentChanges,
          pendingPortal: images.flatMap((i) => (i.portalChange ? [{ id: i.id, name: i.name, change: i.portalChange }] : [])),
          charts,
        }}
      />,
    );
  });

  web.post('/verify', (c) => {
    void deps.checker.checkAll().catch((err: unknown) => deps.log.error({ err }, 'verify all failed'));
    return done(c, '/admin', 'verify-started');
  });
  web.post('/verify/cancel', (c) => {
    deps.checker.cancel();
    return done(c, '/admin', 'verify-cancelled');
  });

  // Golden images
  web.get('/images', async (c) => c.html(<ImagesPage {...common(c)} images={await listImages(deps, base(c))} />));
  web.get('/images/new', async (c) =>
    c.html(<ImageFormPage {...common(c)} image={null} values={prefilledImageValues(c)} blobs={await listBlobViews(deps, base(c))} />),
  );
  web.post('/images/new', async (c) => {
    const form = await c.req.parseBody();
    const values = imageValues(form);
    const archWarnings = await unconfirmedArchWarnings(c, form, values);
    if (archWarnings.length > 0) {
      return c.html(<ImageFormPage {...common(c)} image={null} values={values} blobs={await listBlobViews(deps, base(c))} archWarnings={archWarnings} />, 409);
    }
    try {
      const image = await createImage(deps, c.get('actor'), imageInput(values), base(c));
      return done(c, `/admin/images/${image.id}`, 'image-created');
    } catch (err) {
      const e = formError(err);
      return c.html(<ImageFormPage {...common(c)} image={null} values={values} blobs={await listBlobViews(deps, base(c))} error={e.message} fieldErrors={e.fields} />, e.status);
    }
  });
  web.get('/images/:id', async (c) => {
    const image = await getImage(deps, parseId(c.req.param('id'), 'image'), base(c));
    return renderPortal(c, image, await lastLinkCheck(deps, image.id));
  });
  // Post/redirect/get: the result is stored and shown by the GET, so a reload does not check again.
  web.post('/images/:id/check', async (c) => {
    const image = await getImage(deps, parseId(c.req.param('id'), 'image'), base(c));
    await saveLinkCheck(deps, image.id, await checkImageLinks(deps, image, addressOf(c)));
    return c.redirect(`/admin/images/${image.id}?done=links-checked#check`, 303);
  });
  web.post('/images/:id/portal/confirm', async (c) => {
    const id = parseId(c.req.param('id'), 'image');
    const form = await c.req.parseBody();
    const back = field(form, 'back') === '/admin' ? '/admin' : `/admin/images/${id}`;
    try {
      await confirmPortalValues(deps, c.get('actor'), id, base(c), field(form, 'fingerprint') || undefined);
      return done(c, back, 'portal-confirmed');
    } catch (err) {
      const e = formError(err);
      const image = await getImage(deps, id, base(c));
      return renderPortal(c, image, await lastLinkCheck(deps, id), e.message, e.status);
    }
  });
  web.get('/images/:id/edit', async (c) => {
    const image = await getImage(deps, parseId(c.req.param('id'), 'image'), base(c));
    const values: ImageFormValues = {
      name: image.name,
      description: image.description,
      arm64: { enabled: image.arm64.enabled, sha256: image.arm64.sha256 ?? '' },
      x86_64: { enabled: image.x86_64.enabled, sha256: image.x86_64.sha256 ?? '' },
    };
    return c.html(<ImageFormPage {...common(c)} image={image} values={values} blobs={await listBlobViews(deps, base(c))} />);
  });
  web.post('/images/:id/edit', async (c) => {
    const id = parseId(c.req.param('id'), 'image');
    const image = await getImage(deps, id, base(c));
    const form = await c.req.parseBody();
    const values = imageValues(form);
    const archWarnings = await unconfirmedArchWarnings(c, form, values);
    if (archWarnings.length > 0) {
      return c.html(<ImageFormPage {...common(c)} image={image} values={values} blobs={await listBlobViews(deps, base(c))} archWarnings={archWarnings} />, 409);
    }
    try {
      await updateImage(deps, c.get('actor'), id, imageInput(values), base(c));
      return done(c, `/admin/images/${id}`, 'image-saved');
    } catch (err) {
      const e = formError(err);
      return c.html(<ImageFormPage {...common(c)} image={image} values={values} blobs={await listBlobViews(deps, base(c))} error={e.message} fieldErrors={e.fields} />, e.status);
    }
  });
  web.get('/images/:id/delete', async (c) => c.html(<ImageDeletePage {...common(c)} image={await getImage(deps, parseId(c.req.param('id'), 'image'), base(c))} />));
  web.post('/images/:id/delete', async (c) => {
    await deleteImage(deps, c.get('actor'), parseId(c.req.param('id'), 'image'), base(c));
    return done(c, '/admin/images', 'image-deleted');
  });
  web.post('/images/:id/assign', async (c) => {
    const id = parseId(c.req.param('id'), 'image');
    const form = await c.req.parseBody();
    try {
      await updateGroup(deps, c.get('actor'), parseId(field(form, 'groupId'), 'group'), { imageId: id });
      return done(c, `/admin/images/${id}`, 'group-assigned');
    } catch (err) {
      const e = formError(err);
      return renderPortal(c, await getImage(deps, id, base(c)), null, e.message, e.status);
    }
  });

  /** A package marked for the other architecture is saved only once the admin ticked "use it anyway". */
  async function unconfirmedArchWarnings(c: WebContext, form: Record<string, unknown>, values: ImageFormValues): Promise<string[]> {
    if (form.confirmArch === 'yes') return [];
    const wanted = ARCHES.map((arch) => values[arch].sha256).filter((sha) => sha !== '');
    if (wanted.length === 0) return [];
    const byDigest = new Map((await listBlobViews(deps, base(c))).map((b) => [b.sha256, b]));
    return archMismatchWarnings(
      ARCHES.map((arch) => {
        const blob = byDigest.get(values[arch].sha256);
        return { arch, label: ARCH_LABELS[arch], packageName: blob?.name ?? null, packageArch: blob?.arch ?? null };
      }),
    );
  }

  async function renderPortal(c: WebContext, image: ImageView, check: LinkCheckReport | null, error?: string, status: 200 | 400 | 404 | 409 | 422 = 200) {
    const groups = await listGroups(deps);
    const assignable = groups.filter((g) => g.imageId === null);
    return c.html(<ImagePortalPage {...common(c)} image={image} address={addressOf(c)} check={check} assignable={assignable} groupCount={groups.length} error={error} />, status);
  }

  // Settings: the public address Macs use (MIRROR_PUBLIC_URL wins when set).
  const settingsPage = (c: WebContext, value: string, error?: { message: string; fields: Record<string, string>; status: 400 | 404 | 409 | 422 }) =>
    c.html(
      <SettingsPage {...common(c)} address={addressOf(c)} value={value} seenAt={new URL(c.req.url).origin} error={error?.message} fieldError={error?.fields.publicUrl} />,
      error?.status ?? 200,
    );
  web.get('/settings', (c) => settingsPage(c, addressOf(c).stored ?? ''));
  web.post('/settings', async (c) => {
    const form = await c.req.parseBody();
    const clear = field(form, 'action') === 'clear';
    const value = field(form, 'publicUrl');
    try {
      await updateSettings(deps, c.get('actor'), { publicUrl: clear ? null : value });
      return done(c, '/admin/settings', clear ? 'settings-cleared' : 'settings-saved');
    } catch (err) {
      return settingsPage(c, value, formError(err));
    }
  });

  // Groups
  const groupsPage = async (
    c: WebContext,
    values: GroupFormValues,
    error?: { message: string; fields: Record<string, string>; status: 400 | 404 | 409 | 422 | 413; csvProblems?: CsvProblem[] | undefined },
    flashText?: string,
  ) =>
    c.html(
      <GroupsPage
        {...common(c)}
        flash={flashText ?? flash(c)}
        groups={await listGroups(deps)}
        images={await listImages(deps, base(c))}
        values={values}
        error={error?.message}
        fieldErrors={error?.fields}
        csvProblems={error?.csvProblems}
      />,
      error?.status ?? 200,
    );
  web.get('/groups', (c) => groupsPage(c, { name: '', licenseKey: '', primary: false, imageId: '' }, undefined, importFlash(c)));
  web.get('/groups.csv', async (c) => {
    c.header('Content-Type', 'text/csv; charset=utf-8; header=present');
    c.header('Content-Disposition', `attachment; filename="goldmirror-groups-${new Date().toISOString().slice(0, 10)}.csv"`);
    return c.body(await exportGroupsCsv(deps));
  });
  web.post('/groups/import', async (c) => {
    try {
      const { file, dryRun } = await receiveGroupsCsv(c, c.get('session')?.csrfToken ?? null);
      const report = await applyGroupsCsv(deps, c.get('actor'), file, { dryRun });
      const counts = `created=${report.created.length}&updated=${report.updated.length}&unchanged=${report.unchanged.length}`;
      return c.redirect(`/admin/groups?done=${dryRun ? 'groups-checked' : 'groups-imported'}&${counts}`, 303);
    } catch (err) {
      const e = formError(err);
      const problems = toAppError(err).details.problems as CsvProblem[] | undefined;
      if (problems) c.header('Connection', 'close');
      const message = problems ? `Nothing was imported: the file has ${problems.length === 1 ? 'a problem' : `${problems.length} problems`} (listed below).` : e.message;
      return groupsPage(c, { name: '', licenseKey: '', primary: false, imageId: '' }, { message, fields: {}, status: e.status, csvProblems: problems });
    }
  });
  web.post('/groups', async (c) => {
    const values = groupValues(await c.req.parseBody());
    try {
      await createGroup(deps, c.get('actor'), groupInput(values));
      return done(c, '/admin/groups', 'group-created');
    } catch (err) {
      return groupsPage(c, values, formError(err));
    }
  });
  web.get('/groups/:id', async (c) => {
    const group = await getGroup(deps, parseId(c.req.param('id'), 'group'));
    const values = { name: group.name, licenseKey: group.licenseKey ?? '', primary: group.primary, imageId: group.imageId === null ? '' : String(group.imageId) };
    return c.html(<GroupEditPage {...common(c)} group={group} images={await listImages(deps, base(c))} values={values} />);
  });
  web.post('/groups/:id', async (c) => {
    const id = parseId(c.req.param('id'), 'group');
    const group = await getGroup(deps, id);
    const values = groupValues(await c.req.parseBody());
    try {
      await updateGroup(deps, c.get('actor'), id, groupInput(values));
      return done(c, '/admin/groups', 'group-saved');
    } catch (err) {
      const e = formError(err);
      return c.html(<GroupEditPage {...common(c)} group={group} images={await listImages(deps, base(c))} values={values} error={e.message} fieldErrors={e.fields} />, e.status);
    }
  });
  // Removing an assignment and deleting a group ask first (a GET page), as deleting an image does;
  // a post without the page's confirm=yes (an old form, another page's Remove button) is sent there.
  web.get('/groups/:id/unassign', async (c) => {
    const group = await getGroup(deps, parseId(c.req.param('id'), 'group'));
    return c.html(<GroupUnassignPage {...common(c)} group={group} back={safeBack(c.req.query('back'), group.id)} />);
  });
  web.post('/groups/:id/unassign', async (c) => {
    const id = parseId(c.req.param('id'), 'group');
    const form = await c.req.parseBody();
    const back = safeBack(field(form, 'back'), id);
    if (form.confirm !== 'yes') return c.redirect(`/admin/groups/${id}/unassign?back=${encodeURIComponent(back)}`, 303);
    await updateGroup(deps, c.get('actor'), id, { imageId: null });
    return done(c, back, 'group-unassigned');
  });
  web.get('/groups/:id/delete', async (c) => c.html(<GroupDeletePage {...common(c)} group={await getGroup(deps, parseId(c.req.param('id'), 'group'))} />));
  web.post('/groups/:id/delete', async (c) => {
    const id = parseId(c.req.param('id'), 'group');
    const form = await c.req.parseBody();
    if (form.confirm !== 'yes') return c.redirect(`/admin/groups/${id}/delete`, 303);
    await deleteGroup(deps, c.get('actor'), id);
    return done(c, '/admin/groups', 'group-deleted');
  });

  // Downloads: the page, and its two tables alone for live.js.
  web.get('/downloads', async (c) => {
    const query = c.req.query();
    let filter: DownloadFilter = {};
    let error: string | undefined;
    try {
      filter = parseDownloadFilter(query);
    } catch (err) {
      error = formError(err).message;
    }
    // One after the other: the listing first writes pending rows, which the choices then see.
    const page = await listDownloads(deps, filter);
    const choices = await downloadFilterChoices(deps);
    const retention = deps.config.downloadLogRetentionMs > 0 ? formatRetention(deps.config.downloadLogRetentionMs) : 'ever (never pruned)';
    return c.html(<DownloadsPage {...common(c)} error={error} filter={filter} page={page} choices={choices} retention={retention} />, error ? 400 : 200);
  });
  web.get('/downloads/live', async (c) => {
    const { part, ...query } = c.req.query();
    const filter = parseDownloadFilter(query);
    const page = await listDownloads(deps, filter);
    c.header('Cache-Control', 'no-store');
    if (part === 'active') return c.html(<InProgressTable rows={page.inProgress} />);
    const filtered = filter.image !== undefined || filter.arch !== undefined || !!filter.client || filter.result !== undefined;
    return c.html(<FinishedTable rows={page.downloads} filtered={filtered} />);
  });

  // History: the audit log in sentences.
  web.get('/history', async (c) => {
    const before = c.req.query('before');
    const query: HistoryQuery = {
      limit: 50,
      beforeId: before && /^\d{1,15}$/.test(before) ? Number(before) : undefined,
      actor: c.req.query('actor') || undefined,
      action: c.req.query('action') || undefined,
      text: (c.req.query('q') ?? '').slice(0, 200).trim() || undefined,
      signIns: c.req.query('logins') === '1',
    };
    const [{ entries, nextBefore }, actors] = await Promise.all([listHistory(deps, query), historyActors(deps)]);
    return c.html(<HistoryPage {...common(c)} query={query} entries={entries} nextBefore={nextBefore} actors={actors} />);
  });

  // Packages
  web.get('/blobs', async (c) => c.html(<BlobsPage {...common(c)} blobs={await listBlobViews(deps, base(c))} graceMs={deps.config.gcGraceMs} />));
  web.get('/blobs/:sha256', async (c) => {
    const blob = await getBlobView(deps, c.req.param('sha256'), base(c));
    return c.html(<BlobPage {...common(c)} blob={blob} downloads={await downloadCountOf(deps, blob.sha256)} graceMs={deps.config.gcGraceMs} />);
  });
  web.post('/blobs/:sha256/verify', async (c) => {
    const blob = await getBlobView(deps, c.req.param('sha256'), base(c));
    void deps.checker.check(blob.sha256 as Sha256).catch(() => undefined);
    return done(c, '/admin', 'verify-started');
  });
  web.post('/blobs/:sha256/arch', async (c) => {
    const form = await c.req.parseBody();
    const blob = await updateBlobArch(deps, c.get('actor'), c.req.param('sha256'), field(form, 'arch'), base(c));
    return done(c, `/admin/blobs/${blob.sha256}`, 'blob-arch-saved');
  });
  web.post('/blobs/:sha256/delete', async (c) => {
    const form = await c.req.parseBody();
    const blob = await getBlobView(deps, c.req.param('sha256'), base(c));
    if (form.confirm !== 'yes') {
      return c.html(<BlobPage {...common(c)} blob={blob} downloads={0} graceMs={deps.config.gcGraceMs} error="Tick the box to confirm the deletion." />, 400);
    }
    await deleteBlob(deps, c.get('actor'), blob.sha256, base(c));
    return done(c, '/admin/blobs', 'blob-deleted');
  });

  const uploadPage = async (c: WebContext, extra: { fetchValues?: { url: string; sha256: string; checksumUrl: string }; error?: string; status?: 200 | 400 | 404 | 409 | 422 | 507 } = {}) =>
    c.html(
      <UploadPage
        {...common(c)}
        jobs={deps.transfers.list()}
        unfinished={await deps.uploads.listUnfinished()}
        nowMs={Date.now()}
        fetchValues={extra.fetchValues}
        error={extra.error}
      />,
      extra.status ?? 200,
    );
  web.get('/upload', (c) => uploadPage(c));
  web.post('/uploads/:id/discard', async (c) => {
    try {
      await deps.uploads.discard(c.req.param('id'));
    } catch (err) {
      const e = formError(err);
      return uploadPage(c, { error: e.message, status: e.status });
    }
    return c.redirect('/admin/upload?done=upload-discarded#unfinished', 303);
  });
  web.post('/fetch', async (c) => {
    const form = await c.req.parseBody();
    const values = { url: field(form, 'url').trim(), sha256: field(form, 'sha256').trim(), checksumUrl: field(form, 'checksumUrl').trim() };
    try {
      if (!/^https?:\/\/\S+$/i.test(values.url)) throw new AppError('VALIDATION_FAILED', 'enter the http:// or https:// URL of the package');
      if (values.checksumUrl && !/^https?:\/\/\S+$/i.test(values.checksumUrl)) throw new AppError('VALIDATION_FAILED', 'the checksum file URL must start with http:// or https://');
      const expected = values.sha256 ? parseSha256(values.sha256, 'the SHA-256') : undefined;
      deps.transfers.startFetch(values.url, { expectedSha256: expected, checksumUrl: values.checksumUrl || undefined });
      return c.redirect('/admin/upload?done=fetch-started#pull', 303);
    } catch (err) {
      const e = formError(err);
      return uploadPage(c, { fetchValues: values, error: e.message, status: e.status });
    }
  });
  web.post('/fetch/:id/cancel', (c) => {
    deps.transfers.cancel(c.req.param('id'));
    return c.redirect('/admin/upload?done=fetch-cancelled#pull', 303);
  });
  web.post('/upload', async (c) => {
    try {
      const { sha256, checksumCompared } = await receiveFormUpload(deps.ingestDeps, c.req.raw, c.get('session')?.csrfToken ?? null);
      return c.redirect(`/admin/blobs/${sha256}?done=${checksumCompared ? 'blob-uploaded' : 'blob-uploaded-unchecked'}`, 303);
    } catch (err) {
      if (toAppError(err).code === 'FORBIDDEN') throw err;
      const e = formError(err);
      // A full disk keeps its own status (507), like the API and tus answer it.
      const status = toAppError(err).code === 'INSUFFICIENT_STORAGE' ? 507 : e.status;
      return uploadPage(c, { error: e.message, status });
    }
  });

  web.notFound((c) => c.html(<ErrorPage status={404} message={`There is no page at ${c.req.path}.`} user={null} csrf={null} />, 404));
  web.onError((err, c) => {
    const e = toAppError(err);
    if (e.code === 'INTERNAL') deps.log.error({ err }, 'admin page failed');
    const message = e.code === 'INTERNAL' ? 'The server could not complete this request; the details are in its log.' : e.message;
    let who: string | null = null;
    let token: string | null = null;
    try {
      who = user(c as WebContext);
      token = csrf(c as WebContext);
    } catch {
      // not signed in
    }
    return c.html(<ErrorPage status={e.status} message={message} user={who} csrf={token} />, e.status as 500);
  });
  return web;
}

/** A retention period for people: whole days, else hours. */
function formatRetention(ms: number): string {
  const days = ms / 86_400_000;
  if (Number.isInteger(days)) return `${days} day${days === 1 ? '' : 's'}`;
  const hours = Math.round(ms / 3_600_000);
  return `${hours} hour${hours === 1 ? '' : 's'}`;
}

/** Where a confirmation leads back to: the image page or the group's own page, nothing else. */
function safeBack(back: string | undefined, groupId: number): string {
  return back && /^\/admin\/(images|groups)\/\d+$/.test(back) ? back : `/admin/groups/${groupId}`;
}

/** The flash after a CSV import (post/redirect/get): built from counts only, never from request text. */
function importFlash(c: Context): string | undefined {
  const kind = c.req.query('done');
  if (kind !== 'groups-imported' && kind !== 'groups-checked') return undefined;
  const n = (key: string) => Number(/^\d{1,6}$/.test(c.req.query(key) ?? '') ? c.req.query(key) : 0);
  const [created, updated, unchanged] = [n('created'), n('updated'), n('unchanged')];
  return kind === 'groups-checked'
    ? `The file is fine: importing it would create ${created}, update ${updated} and leave ${unchanged} group(s) unchanged. Nothing was changed.`
    : `Groups imported: ${created} created, ${updated} updated, ${unchanged} unchanged.`;
}

/** The CSV import form: the file is streamed into the reader (capped there), never buffered whole. */
async function receiveGroupsCsv(c: Context, expectedCsrf: string | null): Promise<{ file: GroupCsvFile; dryRun: boolean }> {
  const body = c.req.raw.body;
  if (!body) throw new AppError('BAD_REQUEST', 'the import form arrived empty');
  return new Promise((resolve, reject) => {
    let parser: busboy.Busboy;
    try {
      parser = busboy({ headers: Object.fromEntries(c.req.raw.headers), limits: { files: 1, fields: 5, fieldSize: 1024 } });
    } catch {
      reject(new AppError('BAD_REQUEST', 'the import must be sent as multipart/form-data'));
      return;
    }
    let dryRun = false;
    let rows: Promise<GroupCsvFile> | null = null;
    const csrf = streamedFormCsrf(expectedCsrf);
    parser.on('field', (name, value) => {
      csrf.field(name, value);
      if (name === 'dryRun') dryRun = value === 'on';
    });
    parser.on('file', (name, stream) => {
      if (!csrf.ok()) {
        stream.resume();
        return void reject(csrf.refusal());
      }
      if (name !== 'file' || rows) return void stream.resume();
      rows = readGroupsCsv(stream);
      // A reader that stopped early (a bad line) must not stall the form: drain the rest.
      rows.catch(() => stream.resume());
    });
    parser.on('error', (err: Error) => reject(new AppError('BAD_REQUEST', `the import form is malformed: ${err.message}`)));
    parser.on('close', () => {
      if (!csrf.ok()) reject(csrf.refusal());
      else if (!rows) reject(new AppError('VALIDATION_FAILED', 'pick a CSV file to import', { fields: [{ field: 'file', message: 'required' }] }));
      else rows.then((file) => resolve({ file, dryRun }), reject);
    });
    Readable.fromWeb(body).on('error', (err) => parser.destroy(err)).pipe(parser);
  });
}

function safeNext(next: string | undefined): string {
  return next && /^\/admin(\/[A-Za-z0-9/_-]*)?$/.test(next) && !next.includes('//') ? next : '/admin';
}

function formError(err: unknown): { message: string; fields: Record<string, string>; status: 400 | 404 | 409 | 422 } {
  const e = toAppError(err);
  if (e.code === 'INTERNAL') throw err;
  const fields: Record<string, string> = {};
  const list = e.details.fields;
  if (Array.isArray(list)) {
    for (const f of list as Array<{ field: string; message: string }>) fields[f.field] ??= f.message;
  }
  const status = ([400, 404, 409, 422].includes(e.status) ? e.status : 400) as 400 | 404 | 409 | 422;
  return { message: e.message, fields, status };
}

/** The new-image form opened from "Create a golden image with this package" (?arm64=<sha256> or ?x86_64=<sha256>). */
function prefilledImageValues(c: Context): ImageFormValues {
  const values = emptyImageValues();
  for (const arch of ARCHES) {
    const sha256 = c.req.query(arch)?.toLowerCase();
    if (sha256 && /^[0-9a-f]{64}$/.test(sha256)) values[arch] = { enabled: true, sha256 };
  }
  return values;
}

function emptyImageValues(): ImageFormValues {
  return { name: '', description: '', arm64: { enabled: false, sha256: '' }, x86_64: { enabled: false, sha256: '' } };
}

function imageValues(form: Record<string, unknown>): ImageFormValues {
  const str = (k: string) => (typeof form[k] === 'string' ? (form[k]) : '');
  return {
    name: str('name'),
    description: str('description'),
    arm64: { enabled: form['arm64.enabled'] === 'on', sha256: str('arm64.sha256') },
    x86_64: { enabled: form['x86_64.enabled'] === 'on', sha256: str('x86_64.sha256') },
  };
}

function imageInput(v: ImageFormValues): Record<string, unknown> {
  return {
    name: v.name,
    description: v.description,
    arm64: { enabled: v.arm64.enabled, sha256: v.arm64.sha256 || null },
    x86_64: { enabled: v.x86_64.enabled, sha256: v.x86_64.sha256 || null },
  };
}

function groupValues(form: Record<string, unknown>): GroupFormValues {
  const str = (k: string) => (typeof form[k] === 'string' ? (form[k]) : '');
  return { name: str('name'), licenseKey: str('licenseKey'), primary: form.primary === 'on', imageId: str('imageId') };
}

function groupInput(v: GroupFormValues): Record<string, unknown> {
  return {
    name: v.name,
    licenseKey: v.licenseKey.trim() === '' ? null : v.licenseKey,
    primary: v.primary,
    imageId: v.imageId === '' ? null : Number(v.imageId),
  };
}
