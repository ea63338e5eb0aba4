/**
 * Parallels Desktop updates: the versions this mirror knows (from the upstream feeds or added by hand), syncing
 * with upstream on demand, publishing into the feed Macs read, and adding a .dmg sent as the raw request body.
 */
import { Readable } from 'node:stream';
import { z } from '@hono/zod-openapi';
import type { Context, MiddlewareHandler } from 'hono';
import { AppError } from '../../errors.js';
import type { AuthEnv } from '../../http/auth.js';
import { assertFreeSpace } from '../../services/ingest.js';
import { parseVersion } from '../../services/pd-updates/feed.js';
import { syncUpdates } from '../../services/pd-updates/sync.js';
import {
  addUpdateFile,
  FEED_PATH,
  getUpdate,
  listUpdates,
  publishUpdate,
  resolveUpdateAlert,
  rollbackUpdate,
  unpublishUpdate,
} from '../../services/pd-updates/versions.js';
import { apiApp, closeOnFailure, created, jsonRequest, ok, queryText, rejectAs, routes, textParam } from './shared.js';
import type { ApiApp, ApiDeps } from './shared.js';

const route = routes('Updates');

const when = z.string().openapi({ description: 'ISO 8601 time' });
const UpdateView = z
  .object({
    version: z.string().openapi({ example: '26.3.3-57507' }),
    major: z.number().int(),
    codename: z.string().openapi({ description: 'StringRepresentation, as the feed gives it' }),
    origin: z.enum(['upstream', 'manual']).openapi({ description: '`manual`: added by hand (POST /updates)' }),
    feedUrl: z.string().nullable().openapi({ description: 'The upstream feed that lists it' }),
    upstreamUrl: z
      .string()
      .nullable()
      .openapi({ description: 'The upstream FilePath (null for a file added by hand)' }),
    fileSize: z.string().nullable().openapi({
      description: 'FileSize as the feed writes it (its unit is undocumented; bytes in entries made here)',
    }),
    state: z.enum(['waiting', 'stored', 'failed', 'collected']).openapi({
      description:
        'Of the file: `waiting` (not downloaded yet), `stored`, `failed` (see fetchError), `collected` (by GC)',
    }),
    fetchError: z.string().nullable(),
    sha256: z.string().nullable(),
    size: z.number().int().nullable().openapi({ description: 'Bytes of the stored file' }),
    blobState: z
      .enum(['ok', 'corrupt', 'missing'])
      .nullable()
      .openapi({ description: 'What the integrity checks say of the stored file' }),
    fetchedAt: when.nullable(),
    published: z.boolean().openapi({ description: 'Listed in the feed Macs read' }),
    publishedAt: when.nullable(),
    unpublishedAt: when.nullable(),
    listed: z.boolean().openapi({ description: 'Listed by the last good read of its upstream feed' }),
    notes: z.array(z.string()).openapi({ description: "E.g. a FileSize that differs from the file's length" }),
    alert: z
      .string()
      .nullable()
      .openapi({ description: 'Set when the bytes behind the upstream URL changed after this mirror stored them' }),
    alertAt: when.nullable(),
    alertSha256: z
      .string()
      .nullable()
      .openapi({ description: 'The other bytes found behind the URL, stored so they can be taken (see /alert)' }),
    downloads: z.number().int(),
    link: z
      .string()
      .nullable()
      .openapi({ description: 'The .dmg link the feed gives Macs; null while not stored or without a public address' }),
    firstSeenAt: when,
  })
  .openapi('Update');

const FeedStatus = z
  .object({
    url: z.string(),
    checkedAt: when.nullable(),
    okAt: when.nullable().openapi({ description: 'The last read that could be used' }),
    error: z.string().nullable().openapi({ description: 'Why the last read failed (what is served stays as it was)' }),
    skipped: z.array(z.string()).openapi({ description: 'Entries of the feed left out, and why' }),
  })
  .openapi('UpdateFeedStatus');

const Overview = z.object({
  feedUrl: z
    .string()
    .nullable()
    .openapi({
      description: `The feed to give the Macs (<public address>${FEED_PATH}); null without a public address`,
    }),
  upstream: z.array(FeedStatus),
  versions: z.array(UpdateView).openapi({ description: 'Newest first' }),
});

const names = z.array(z.string());
const SyncReport = z.object({
  feeds: z.array(
    z.object({
      url: z.string(),
      ok: z.boolean(),
      error: z.string().nullable(),
      versions: names.openapi({ description: 'Versions the feed lists' }),
      added: names.openapi({ description: 'Versions seen for the first time' }),
      skipped: names,
    }),
  ),
  fetched: names.openapi({ description: 'Versions whose file this run downloaded and stored' }),
  failed: z.array(z.object({ version: z.string(), error: z.string() })),
  alerts: z
    .array(z.object({ version: z.string(), message: z.string() }))
    .openapi({ description: 'Versions whose upstream bytes changed after they were stored' }),
  published: names.openapi({ description: 'Published by MIRROR_PD_UPDATES_AUTO_PUBLISH' }),
});

const Rollback = z.object({
  version: UpdateView,
  unpublished: names.openapi({ description: 'The newer versions taken out of the feed' }),
});

const versionParam = textParam('version', 'A Parallels Desktop version, like 26.3.3-57507');
const first = (v: unknown): unknown => (Array.isArray(v) ? (v as unknown[])[0] : v);
const addQuery = z.object({
  version: z
    .preprocess(
      first,
      z
        .string({ error: 'required: the Parallels Desktop version of the file, like 26.3.3-57507' })
        .refine((v) => parseVersion(v) !== null, 'must be a Parallels Desktop version like 26.3.3-57507'),
    )
    .openapi({ type: 'string', description: 'The version of the file, like 26.3.3-57507', example: '26.3.3-57507' }),
  codename: queryText('StringRepresentation of the generated entry (the code name), one line'),
  ancestor: z
    .union([z.string(), z.array(z.string())])
    .optional()
    .openapi({
      description:
        'The uuid of an older build it updates (repeat for several), e.g. desktop.26.3.2.57480.en_US.parallels.mac',
    }),
  locale: queryText('LocaleName of the entry (default en_US)'),
  publish: z
    .preprocess(first, z.enum(['true', 'false'], { error: 'must be true or false' }).optional())
    .openapi({ type: 'string', description: '`true`: publish at once' }),
});

/** The types a .dmg may be sent as. */
const DMG_TYPES = ['application/octet-stream', 'application/x-apple-diskimage'];
const dmg = z.string().openapi({ format: 'binary', description: 'The .dmg file, as it was downloaded' });

const list = route('get', '/', 'Upstream feeds and every version', ok(Overview, 'The feed URL, upstream and versions'));
const read = route('get', '/{version}', 'Show a version', ok(UpdateView, 'The version'), {
  description: 'A version not known here is `404 NOT_FOUND`; text that is no version is `400 VALIDATION_FAILED`.',
  params: versionParam,
});
const sync = route(
  'post',
  '/sync',
  'Sync with the upstream feeds now',
  ok(SyncReport, 'What the run read and stored'),
  {
    description:
      'Reads every feed of MIRROR_PD_UPDATES_UPSTREAM and downloads the files not stored yet; answers when done ' +
      '(files are large: allow minutes). Closing the connection stops it. Without an upstream: `409 CONFLICT`.',
  },
);
const publish = route('post', '/{version}/publish', 'Publish a version', ok(UpdateView, 'The version, published'), {
  description: 'Its file must be stored (`409 UPDATE_NOT_STORED`).',
  params: versionParam,
});
const unpublish = route(
  'post',
  '/{version}/unpublish',
  'Take a version out of the feed',
  ok(UpdateView, 'The version, not published'),
  { params: versionParam },
);
const rollback = route(
  'post',
  '/{version}/rollback',
  'Roll back to a version',
  ok(Rollback, 'Published and taken out'),
  {
    description:
      'Publishes it (its file must be stored) and unpublishes every newer published version of the same major ' +
      'version, at once.',
    params: versionParam,
  },
);
const resolveAlert = route(
  'post',
  '/{version}/alert',
  'Close the alert of a version',
  ok(UpdateView, 'The version, its alert closed'),
  {
    description:
      '`{"take": false}` keeps the stored file (the other bytes are left to GC); `{"take": true}` makes the other ' +
      "bytes found behind the URL the version's file (`409 UPDATE_NOT_STORED` when they were not stored). " +
      'No open alert: `409 CONFLICT`.',
    params: versionParam,
    body: jsonRequest(z.object({ take: z.boolean() }).strict(), 'Which file the version keeps'),
  },
);
const add = route('post', '/', 'Add a .dmg by hand', created(UpdateView, 'Stored, with a generated feed entry'), {
  description:
    'For air-gapped mirrors: the request body is the file, streamed into the store. It must end like a disk ' +
    'image (`400 UPDATE_FILE_INVALID`, nothing stored); a version whose file is stored is `409 UPDATE_EXISTS`.',
  query: addQuery,
  body: {
    description: 'The .dmg',
    required: true,
    content: { 'application/octet-stream': { schema: dmg }, 'application/x-apple-diskimage': { schema: dmg } },
  },
});

/** The request's body, read only when the ingest starts (a refusal before that leaves it unread). */
async function* bodyOf(body: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  yield* Readable.fromWeb(body as Parameters<typeof Readable.fromWeb>[0]) as AsyncIterable<Uint8Array>;
}

/** Runs work bound to the request; a client gone mid-way ends in an exposed error, not an "unhandled" one. */
async function untilClientLeaves<T>(c: Context, stopped: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (!c.req.raw.signal.aborted) throw err;
    throw new AppError('BAD_REQUEST', `the client closed the connection; ${stopped}`, {}, { cause: err });
  }
}

/** Mounted at /updates before the body limit (a .dmg is gigabytes); `admin` guards every route. */
export function updatesApi(deps: ApiDeps, admin: MiddlewareHandler<AuthEnv>): ApiApp {
  const app = apiApp();
  app.use('*', admin);
  app.openapi(list, async (c) => c.json(await listUpdates(deps), 200));
  app.openapi(sync, async (c) => {
    const feeds = deps.config.pdUpdatesUpstream;
    if (feeds.length === 0)
      throw new AppError(
        'CONFLICT',
        'this mirror follows no upstream feed (MIRROR_PD_UPDATES_UPSTREAM is empty): set it to the official feed, ' +
          'e.g. https://update.parallels.com/desktop/v26/parallels/parallels_updates.xml, and restart; an ' +
          'air-gapped mirror adds files with POST /api/v1/updates instead',
      );
    const report = await untilClientLeaves(c, 'the sync stopped (files already stored stay)', () =>
      syncUpdates(deps.ingestDeps, {
        feeds,
        autoPublish: deps.config.pdUpdatesAutoPublish,
        actor: c.get('actor'),
        signal: c.req.raw.signal,
        log: deps.log,
      }),
    );
    return c.json(report, 200);
  });
  app.openapi(read, async (c) => c.json(await getUpdate(deps, c.req.valid('param').version), 200));
  app.openapi(publish, async (c) =>
    c.json(await publishUpdate(deps, c.get('actor'), c.req.valid('param').version), 200),
  );
  app.openapi(unpublish, async (c) =>
    c.json(await unpublishUpdate(deps, c.get('actor'), c.req.valid('param').version), 200),
  );
  app.openapi(rollback, async (c) =>
    c.json(await rollbackUpdate(deps, c.get('actor'), c.req.valid('param').version), 200),
  );
  app.openapi(
    resolveAlert,
    async (c) =>
      c.json(
        await resolveUpdateAlert(deps, c.get('actor'), c.req.valid('param').version, {
          take: c.req.valid('json').take,
        }),
        200,
      ),
    rejectAs('alert decision'),
  );
  app.openapi(
    add,
    async (c) =>
      // A refusal leaves the (possibly huge) body unread: the connection closes with the answer.
      closeOnFailure(c, async () => {
        const query = c.req.valid('query');
        const type = (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
        if (!DMG_TYPES.includes(type))
          throw new AppError(
            'BAD_REQUEST',
            `send the .dmg itself as the request body, with Content-Type ${DMG_TYPES.join(' or ')}`,
          );
        const body = c.req.raw.body;
        if (!body) throw new AppError('BAD_REQUEST', 'send the .dmg as the request body; this request has none');
        // A known length is checked against MIRROR_MIN_FREE_BYTES before a byte is stored.
        const declared = Number(c.req.header('content-length') ?? NaN);
        if (Number.isSafeInteger(declared) && declared > 0)
          await assertFreeSpace(deps.ingestDeps, declared, 'this update file');
        const view = await untilClientLeaves(c, 'nothing was stored', () =>
          addUpdateFile({ ...deps.ingestDeps, config: deps.config }, c.get('actor'), {
            source: bodyOf(body),
            what: 'the request body',
            version: query.version,
            codename: query.codename,
            ancestors: query.ancestor === undefined ? [] : [query.ancestor].flat(),
            locale: query.locale,
            publish: query.publish === 'true',
            signal: c.req.raw.signal,
          }),
        );
        return c.json(view, 201);
      }),
    (result, c) => {
      if (!result.success) c.header('Connection', 'close');
      return rejectAs('update file')(result);
    },
  );
  return app;
}
