/** The JSON API under /api/v1 (see docs/api.md). Routes stay thin: parse, call a service, shape the answer. */
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { deleteCookie } from 'hono/cookie';
import type { BlobStore } from '../../storage/blob-store.js';
import type { Config } from '../../config/load.js';
import type { Db } from '../db/open.js';
import type { Clock } from '../services/deps.js';
import { AppError } from '../errors.js';
import { clientAddressReader, requireAdmin, SESSION_COOKIE, setSessionCookie, type AuthEnv } from '../http/auth.js';
import { listHistory } from '../services/history.js';
import { changePassword, createApiToken, listApiTokens, login, logout, revokeApiToken } from '../services/auth.js';
import { deleteBlob, getBlobView, listBlobViews, updateBlobArch } from '../services/blobs.js';
import { createGroup, deleteGroup, getGroup, listGroups, updateGroup } from '../services/groups.js';
import { applyGroupsCsv, exportGroupsCsv, readGroupsCsv } from '../services/groups-csv.js';
import { createImage, deleteImage, getImage, listImages, portalValues, updateImage } from '../services/images.js';
import { checkImageLinks } from '../services/link-check.js';
import { saveLinkCheck } from '../services/link-check-results.js';
import { confirmPortalValues } from '../services/portal-changes.js';
import { resolvePublicAddress, updateSettings } from '../services/settings.js';
import { parseId, parseInput, sha256Field } from '../services/validation.js';
import type { IntegrityChecker } from '../jobs/integrity-checker.js';
import { collectGarbage } from '../services/gc.js';
import { integritySummary } from '../services/integrity.js';
import { checkHealth } from '../services/health.js';
import { z } from 'zod';
import type { UploadServer } from '../http/uploads.js';
import type { Sha256 } from '../../storage/digest.js';
import { Readable } from 'node:stream';
import { buildManifest, exportBundle } from '../bundles/export.js';
import { importBundle } from '../bundles/import.js';
import type { IngestDeps } from '../services/ingest.js';
import type { TransferJobs } from '../jobs/transfers.js';
import type { ActivityTracker } from '../services/activity.js';
import { listDownloads, parseDownloadFilter } from '../services/download-log.js';

const verifySchema = z
  .object({ sha256: sha256Field.optional(), all: z.boolean().optional(), wait: z.boolean().optional() })
  .strict()
  .refine((v) => (v.sha256 === undefined) !== (v.all !== true), { message: 'give either sha256 or all: true' });
const tokenSchema = z.object({ name: z.string().max(100), scope: z.string().max(20).optional() }).strict();
const gcSchema = z.object({ dryRun: z.boolean().optional() }).strict();
const confirmSchema = z.object({ fingerprint: z.string().max(64).optional() }).strict();
const fetchSchema = z
  .object({ url: z.string().url().max(4096), sha256: sha256Field.optional(), checksumUrl: z.string().url().max(4096).optional() })
  .strict();

function exportOptions(c: Context): { images: string[]; includeBlobs: boolean } {
  return { images: c.req.queries('image') ?? [], includeBlobs: c.req.query('blobs') !== 'false' };
}

export interface ApiDeps {
  config: Config;
  db: Db;
  store: BlobStore;
  clock: Clock;
  checker: IntegrityChecker;
  /** The tus server for resumable uploads (bodies stream through, so it sits before the body limit). */
  uploads: UploadServer;
  ingestDeps: IngestDeps;
  transfers: TransferJobs;
  /** Downloads in progress on this node and the batched download log. */
  activity?: ActivityTracker | undefined;
}

/** Routes that answer without an admin; the auth test walks every other route. */
export const PUBLIC_API_ROUTES = new Set(['POST /api/v1/session']);

export function createApi(deps: ApiDeps): Hono<AuthEnv> {
  const api = new Hono<AuthEnv>();
  // Links start with the configured public address, never with this request's Host.
  const base = async (): Promise<string | null> => (await resolvePublicAddress(deps)).url;
  const clientAddress = clientAddressReader(deps.config.trustProxy);
  // One set of options for every guard, so a renewed cookie always has the sign-in flags.
  const admin = requireAdmin(deps, { publicUrl: deps.config.publicUrl });

  const tus = (c: Context) => deps.uploads.handleWeb(c.req.raw);
  // Unfinished uploads (a plain GET, before tus, which has no listing).
  api.get('/uploads', admin, async (c) => c.json(await deps.uploads.listUnfinished()));
  api.all('/uploads', admin, tus);
  api.all('/uploads/*', admin, tus);
  // Bundle imports stream their (large) body too.
  api.post('/import', admin, async (c) => {
    const body = c.req.raw.body;
    if (!body) throw new AppError('BAD_REQUEST', 'send the bundle (a tar file) as the request body');
    try {
      const report = await importBundle(deps.ingestDeps, Readable.fromWeb(body), {
        dryRun: c.req.query('dryRun') === 'true',
        actor: c.get('actor'),
      });
      return c.json(report);
    } catch (err) {
      // A failed import stops reading the body (it may be gigabytes) and tears the
      // request stream down, which closes the socket right after the error answer.
      // Say so: without this the answer claimed keep-alive and a client's next
      // request on the same connection failed with "other side closed".
      c.header('Connection', 'close');
      throw err;
    }
  });

  api.use(
    '*',
    bodyLimit({
      maxSize: 1024 * 1024,
      onError: (c) => {
        // The unread rest of the body is dropped with the connection, so say
        // so: a keep-alive client would otherwise reuse a dead socket and see
        // "socket hang up" on its next request (found by test/faults/bad-input.test.ts).
        c.header('Connection', 'close');
        throw new AppError('PAYLOAD_TOO_LARGE', 'request bodies of the API are limited to 1 MiB');
      },
    }),
  );

  api.post('/session', async (c) => {
    const grant = await login(deps, await jsonBody(c), clientAddress(c));
    setSessionCookie(c, grant.token, grant.expiresAt, deps.config.publicUrl);
    return c.json({ username: grant.username, csrfToken: grant.csrfToken, expiresAt: new Date(grant.expiresAt).toISOString() });
  });

  api.use('*', admin);

  api.get('/session', (c) => {
    const session = c.get('session');
    const actor = c.get('actor');
    return c.json({ actor: `${actor.kind}:${actor.name}`, username: session?.username ?? null, csrfToken: session?.csrfToken ?? null });
  });
  api.delete('/session', async (c) => {
    const token = c.get('sessionToken');
    if (token) await logout(deps, token);
    deleteCookie(c, SESSION_COOKIE, { path: '/' });
    return c.body(null, 204);
  });
  api.post('/session/password', async (c) => {
    const session = c.get('session');
    const token = c.get('sessionToken');
    if (!session || !token) throw new AppError('FORBIDDEN', 'passwords are changed by a signed-in user, not with an API token');
    await changePassword(deps, session, token, await jsonBody(c));
    return c.body(null, 204);
  });

  api.get('/blobs', async (c) => c.json(await listBlobViews(deps, await base())));
  api.get('/blobs/:sha256', async (c) => c.json(await getBlobView(deps, c.req.param('sha256'), await base())));
  api.patch('/blobs/:sha256', async (c) => {
    const body = (await jsonBody(c)) as { arch?: unknown } | null;
    if (typeof body !== 'object' || body === null || !('arch' in body) || Object.keys(body).some((k) => k !== 'arch')) {
      throw new AppError('VALIDATION_FAILED', 'a package accepts only {"arch": "arm64" | "x86_64" | "unknown"}');
    }
    return c.json(await updateBlobArch(deps, c.get('actor'), c.req.param('sha256'), body.arch, await base()));
  });
  api.delete('/blobs/:sha256', async (c) => c.json({ deleted: await deleteBlob(deps, c.get('actor'), c.req.param('sha256'), await base()) }));

  api.get('/images', async (c) => c.json(await listImages(deps, await base())));
  api.post('/images', async (c) => c.json(await createImage(deps, c.get('actor'), await jsonBody(c), await base()), 201));
  api.get('/images/:id', async (c) => c.json(await getImage(deps, parseId(c.req.param('id'), 'image'), await base())));
  api.patch('/images/:id', async (c) =>
    c.json(await updateImage(deps, c.get('actor'), parseId(c.req.param('id'), 'image'), await jsonBody(c), await base())),
  );
  api.delete('/images/:id', async (c) => c.json(await deleteImage(deps, c.get('actor'), parseId(c.req.param('id'), 'image'), await base())));
  api.get('/images/:id/portal', async (c) => {
    const address = await resolvePublicAddress(deps);
    return c.json(portalValues(await getImage(deps, parseId(c.req.param('id'), 'image'), address.url), address));
  });
  api.post('/images/:id/portal/confirm', async (c) => {
    const id = parseId(c.req.param('id'), 'image');
    // The body is optional: a bare POST confirms whatever is pending now.
    const bare = c.req.header('content-type') === undefined && (c.req.header('content-length') ?? '0') === '0';
    const input = parseInput(confirmSchema, bare ? {} : await jsonBody(c), 'confirmation');
    const address = await resolvePublicAddress(deps);
    await confirmPortalValues(deps, c.get('actor'), id, address.url, input.fingerprint);
    return c.json(portalValues(await getImage(deps, id, address.url), address));
  });
  api.post('/images/:id/check', async (c) => {
    const address = await resolvePublicAddress(deps);
    const view = await getImage(deps, parseId(c.req.param('id'), 'image'), address.url);
    const report = await checkImageLinks(deps, view, address);
    await saveLinkCheck(deps, view.id, report);
    return c.json(report);
  });

  api.get('/settings', async (c) => c.json({ publicUrl: await resolvePublicAddress(deps) }));
  api.patch('/settings', async (c) => c.json({ publicUrl: await updateSettings(deps, c.get('actor'), await jsonBody(c)) }));

  api.get('/groups', async (c) => c.json(await listGroups(deps)));
  api.get('/groups.csv', async (c) => {
    c.header('Content-Type', 'text/csv; charset=utf-8; header=present');
    c.header('Content-Disposition', `attachment; filename="goldmirror-groups-${new Date().toISOString().slice(0, 10)}.csv"`);
    return c.body(await exportGroupsCsv(deps));
  });
  api.post('/groups.csv', async (c) => {
    const type = c.req.header('content-type') ?? '';
    if (!/^(text\/csv|text\/plain|application\/csv)\b/i.test(type)) {
      throw new AppError('BAD_REQUEST', 'send the CSV file as the request body with Content-Type: text/csv');
    }
    try {
      const rows = await readGroupsCsv(Readable.fromWeb(c.req.raw.body ?? new ReadableStream()) as AsyncIterable<Uint8Array>);
      return c.json(await applyGroupsCsv(deps, c.get('actor'), rows, { dryRun: c.req.query('dryRun') === 'true' }));
    } catch (err) {
      // The reader may stop before the end of the body; a keep-alive client must not reuse this socket.
      c.header('Connection', 'close');
      throw err;
    }
  });
  api.post('/groups', async (c) => c.json(await createGroup(deps, c.get('actor'), await jsonBody(c)), 201));
  api.get('/groups/:id', async (c) => c.json(await getGroup(deps, parseId(c.req.param('id'), 'group'))));
  api.patch('/groups/:id', async (c) => c.json(await updateGroup(deps, c.get('actor'), parseId(c.req.param('id'), 'group'), await jsonBody(c))));
  api.delete('/groups/:id', async (c) => c.json({ deleted: await deleteGroup(deps, c.get('actor'), parseId(c.req.param('id'), 'group')) }));

  api.get('/tokens', async (c) => c.json(await listApiTokens(deps)));
  api.post('/tokens', async (c) => {
    const input = parseInput(tokenSchema, await jsonBody(c), 'token');
    return c.json(await createApiToken(deps, c.get('actor'), input.name, input.scope), 201);
  });
  api.delete('/tokens/:name', async (c) => {
    await revokeApiToken(deps, c.get('actor'), c.req.param('name'));
    return c.body(null, 204);
  });

  api.get('/health', async (c) => {
    const report = await checkHealth({ ...deps, minFreeBytes: deps.config.minFreeBytes });
    return c.json({ status: report.ok ? 'ok' : 'unhealthy', ...report }, report.ok ? 200 : 503);
  });

  api.get('/verify', async (c) => c.json({ ...deps.checker.status(), ...(await integritySummary(deps)) }));
  api.post('/verify', async (c) => {
    const input = parseInput(verifySchema, await jsonBody(c), 'verify request');
    if (input.sha256 !== undefined) {
      await getBlobView(deps, input.sha256, await base());
      const result = deps.checker.check(input.sha256 as Sha256);
      if (input.wait) return c.json({ results: { [input.sha256]: await result } });
      void result.catch(() => undefined);
      return c.json({ queued: [input.sha256] }, 202);
    }
    const all = deps.checker.checkAll();
    if (input.wait) return c.json({ results: await all });
    void all.catch(() => undefined);
    return c.json({ queued: 'all' }, 202);
  });
  api.delete('/verify', (c) => {
    const sha256 = c.req.query('sha256');
    return c.json({ cancelled: deps.checker.cancel(sha256 === undefined ? undefined : sha256.toLowerCase()) });
  });

  api.post('/gc', async (c) => {
    const input = parseInput(gcSchema, await jsonBody(c), 'gc request');
    return c.json(await collectGarbage(deps, c.get('actor'), { dryRun: input.dryRun ?? false, graceMs: deps.config.gcGraceMs }));
  });

  api.get('/export/manifest', async (c) => c.json(await buildManifest(deps, exportOptions(c))));
  api.get('/export', async (c) => {
    const manifest = await buildManifest(deps, exportOptions(c));
    const stream = exportBundle(deps.store, manifest);
    c.header('Content-Type', 'application/x-tar');
    c.header('Content-Disposition', `attachment; filename="goldmirror-${manifest.createdAt.slice(0, 10)}.tar"`);
    return c.body(Readable.toWeb(stream) as ReadableStream);
  });

  api.get('/fetch', (c) => c.json(deps.transfers.list()));
  api.post('/fetch', async (c) => {
    const input = parseInput(fetchSchema, await jsonBody(c), 'fetch request');
    const job = deps.transfers.startFetch(input.url, { expectedSha256: input.sha256 as Sha256 | undefined, checksumUrl: input.checksumUrl });
    return c.json(job, 202);
  });
  api.get('/fetch/:id', (c) => {
    const job = deps.transfers.get(c.req.param('id'));
    if (!job) throw new AppError('NOT_FOUND', 'no such fetch job');
    return c.json(job);
  });
  api.delete('/fetch/:id', (c) => {
    if (!deps.transfers.cancel(c.req.param('id'))) throw new AppError('NOT_FOUND', 'no running fetch job with that id');
    return c.body(null, 204);
  });

  api.get('/downloads', async (c) => c.json(await listDownloads(deps, parseDownloadFilter(c.req.query()))));

  api.get('/audit', async (c) => {
    const limit = Number(c.req.query('limit') ?? 50);
    const before = Number(c.req.query('before'));
    const { entries, nextBefore } = await listHistory(deps, {
      limit: Number.isFinite(limit) ? limit : 50,
      beforeId: Number.isFinite(before) ? before : undefined,
      actor: c.req.query('actor') || undefined,
      action: c.req.query('action') || undefined,
      text: c.req.query('q') || undefined,
      // The API lists sign-ins unless told not to; the history page hides them unless told to show them.
      signIns: c.req.query('logins') !== 'false',
    });
    if (nextBefore !== null) c.header('X-Next-Before', String(nextBefore));
    return c.json(entries.map(({ parts: _parts, ...entry }) => entry));
  });

  return api;
}

async function jsonBody(c: Context): Promise<unknown> {
  const type = c.req.header('content-type') ?? '';
  if (!/^application\/json\b/i.test(type)) {
    throw new AppError('BAD_REQUEST', 'send the request body as JSON (Content-Type: application/json)');
  }
  try {
    return await c.req.json();
  } catch {
    throw new AppError('BAD_REQUEST', 'the request body is not valid JSON');
  }
}

