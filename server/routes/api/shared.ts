/**
 * What every resource module of the API shares: its dependencies, the
 * OpenAPIHono flavour it builds, and the request checks that answer exactly
 * as the services do (VALIDATION_FAILED naming each field, 404 for a
 * malformed id, 400 for a body that is not JSON), and the route maker that
 * gives every operation its tags, its error answer and those checks.
 */
import { createRoute, OpenAPIHono, z, type RouteConfig } from '@hono/zod-openapi';
import type { Context, MiddlewareHandler } from 'hono';
import type { BlobStore } from '../../../storage/blob-store.js';
import type { Config } from '../../../config/load.js';
import type { Db } from '../../db/open.js';
import type { Logger } from '../../log.js';
import { AppError } from '../../errors.js';
import type { AuthEnv } from '../../http/auth.js';
import type { UploadServer } from '../../http/uploads.js';
import type { IntegrityChecker } from '../../jobs/integrity-checker.js';
import type { TransferJobs } from '../../jobs/transfers.js';
import type { ActivityTracker } from '../../services/activity.js';
import type { IngestDeps } from '../../services/ingest.js';
import type { Leadership } from '../../services/leadership.js';
import { resolvePublicAddress } from '../../services/settings.js';
import type { Clock } from '../../services/deps.js';
import { validationFailed } from '../../services/validation.js';
import { ErrorBody } from './schemas.js';

export interface ApiDeps {
  config: Config;
  db: Db;
  store: BlobStore;
  log: Logger;
  clock: Clock;
  checker: IntegrityChecker;
  /** The tus server for resumable uploads (bodies stream through, so it sits before the body limit). */
  uploads: UploadServer;
  ingestDeps: IngestDeps;
  transfers: TransferJobs;
  /** Which process runs the scheduled jobs (shown by the health report). */
  leadership: Leadership;
  /** Downloads in progress on this node and the batched download log. */
  activity?: ActivityTracker | undefined;
}

export type ApiApp = OpenAPIHono<AuthEnv>;

type ValidationResult = { target: string } & ({ success: true } | { success: false; error: z.ZodError });

/**
 * The hook for a failed request schema: a path parameter names a missing
 * thing (404, its schema's message), anything else is VALIDATION_FAILED for
 * `what`, the same error the service's own parse would throw.
 */
export function rejectAs(what: string) {
  return function rejectInvalid(result: ValidationResult): undefined {
    if (result.success) return undefined;
    if (result.target === 'param') throw new AppError('NOT_FOUND', result.error.issues[0]?.message ?? 'not found');
    throw validationFailed(result.error, what);
  };
}

/** A resource module: requests it cannot parse are refused as a `request` unless a route names them better. */
export function apiApp(): ApiApp {
  return new OpenAPIHono<AuthEnv>({ defaultHook: rejectAs('request') });
}

/** Path ids are positive integers; anything else is "no such thing", as before the id is looked up. */
export function idParam(what: string) {
  const id = z
    .string()
    .regex(/^[1-9]\d{0,15}$/, { error: (issue) => `no ${what} with id ${JSON.stringify(issue.input)}` })
    .transform(Number)
    .openapi({ param: { name: 'id', in: 'path' }, description: `The ${what}'s id`, example: '1' });
  return z.object({ id });
}

/** A path parameter taken as it comes (the service decides whether it names anything). */
export function textParam<N extends string>(name: N, description: string) {
  const param = z.string().openapi({ param: { name, in: 'path' }, description });
  return z.object({ [name]: param } as Record<N, typeof param>);
}

/** A query parameter given once; repeated, the first one counts (as hono's `c.req.query()` reads it). */
export function queryText(description: string) {
  return z
    .preprocess((v: unknown) => (Array.isArray(v) ? (v as unknown[])[0] : v), z.string().optional())
    .openapi({ description, type: 'string' });
}

const JSON_TYPE = /^application\/json\b/i;
/** What hono's JSON validator accepts; a type the first regex lets through but this one does not is refused here, not deeper. */
const VALIDATOR_JSON_TYPE = /^application\/json(;\s*[a-zA-Z0-9-]+=([^;]+))*$/i;

async function readJson(c: Context): Promise<void> {
  const type = c.req.header('content-type') ?? '';
  if (!JSON_TYPE.test(type) || !VALIDATOR_JSON_TYPE.test(type)) {
    throw new AppError('BAD_REQUEST', 'send the request body as JSON (Content-Type: application/json)');
  }
  try {
    // Parsed once here; the validator reads the cached result.
    await c.req.json();
  } catch {
    throw new AppError('BAD_REQUEST', 'the request body is not valid JSON');
  }
}

/**
 * Runs before the route's validators, so a body that is not JSON gets the
 * API's own 400 rather than the validator's. `params` are checked first, as
 * the handlers always did: a malformed id is a 404 whatever the body.
 * `optional`: a bare request (no type, no length) passes and counts as `{}`.
 */
export function jsonOnly(options: { params?: z.ZodType; optional?: boolean } = {}): MiddlewareHandler<AuthEnv> {
  return async function jsonOnly(c, next) {
    const params = options.params?.safeParse(c.req.param());
    if (params && !params.success) rejectAs('request')({ target: 'param', success: false, error: params.error });
    const bare = c.req.header('content-type') === undefined && (c.req.header('content-length') ?? '0') === '0';
    if (!(options.optional && bare)) await readJson(c);
    await next();
  };
}

/** A JSON request body; `optional`: a bare request counts as `{}`. */
export function jsonRequest<S extends z.ZodType>(schema: S, description: string, optional = false) {
  return { description, required: !optional, content: { 'application/json': { schema } } };
}

export function json<S extends z.ZodType>(schema: S, description: string) {
  return { description, content: { 'application/json': { schema } } } as const;
}

/** Listed on every operation: the one error shape (its status says which). */
export const errors = {
  default: json(ErrorBody, 'An error; the status and `error.code` say which (see docs/api.md)'),
} as const;

type Method = RouteConfig['method'];
type Answers = RouteConfig['responses'];
type Request = NonNullable<RouteConfig['request']>;
/** What a route may add to its method, path, summary and answers; params, query and body form its request. */
interface Extra extends Pick<RouteConfig, 'description' | 'security' | 'middleware'> {
  params?: Request['params'];
  query?: Request['query'];
  body?: Request['body'];
}
type Route<M, P, A, X> = Pick<X, Extract<keyof X, 'description' | 'security' | 'middleware'>> & {
  method: M;
  path: P;
  tags: string[];
  summary: string;
  request: Pick<X, Extract<keyof X, 'params' | 'query' | 'body'>>;
  responses: A & typeof errors;
  getRoutingPath(): string;
};

/** 200 with a JSON answer (`created` 201, `accepted` 202). */
export const ok = <S extends z.ZodType>(schema: S, description: string) => ({ 200: json(schema, description) });
export const created = <S extends z.ZodType>(schema: S, description: string) => ({ 201: json(schema, description) });
export const accepted = <S extends z.ZodType>(schema: S, description: string) => ({ 202: json(schema, description) });
/** 204: done, nothing to say. */
export const noContent = (description: string) => ({ 204: { description } });

/**
 * The route maker of one resource: every operation it makes carries the
 * resource's tags and the error answer, and one with a JSON body first runs
 * `jsonOnly` (after the route's own middleware), checking its path first.
 */
export function routes(...tags: string[]) {
  return function route<
    const M extends Method,
    const P extends string,
    const A extends Answers,
    const X extends Extra = Record<never, never>,
  >(method: M, path: P, summary: string, responses: A, extra: X = {} as X): Route<M, P, A, X> {
    const { description, security, params, query, body } = extra;
    const middleware =
      body?.content['application/json'] === undefined
        ? extra.middleware
        : [...[extra.middleware ?? []].flat(), jsonOnly({ params, optional: body.required !== true })];
    // Keys in the order the document lists them; absent ones stay absent.
    const config = { method, path, tags, summary, description, security, middleware, request: { params, query, body } };
    for (const key of ['description', 'security', 'middleware'] as const) {
      if (config[key] === undefined) delete config[key];
    }
    for (const key of ['params', 'query', 'body'] as const) {
      if (config.request[key] === undefined) delete config.request[key];
    }
    return createRoute({ ...config, responses: { ...responses, ...errors } }) as unknown as Route<M, P, A, X>;
  };
}

/** A required body of a type other than JSON (the handler reads it as a stream). */
export function streamedBody<T extends string, S extends z.ZodType>(type: T, schema: S) {
  return { required: true, content: { [type]: { schema } } as Record<T, { schema: S }> };
}

/** The query of an import that can report what it would change instead. */
export const dryRunQuery = z.object({ dryRun: queryText('`true`: report what would change, change nothing') });

/**
 * Runs the work of a handler that reads a streamed body. A failure may stop the
 * reading before the body's end, so the answer closes the connection: a
 * keep-alive client must not send its next request on that socket.
 */
export async function closeOnFailure<T>(c: Context, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    c.header('Connection', 'close');
    throw err;
  }
}

/** Links start with the configured public address, never with this request's Host. */
export async function publicBase(deps: ApiDeps): Promise<string | null> {
  return (await resolvePublicAddress(deps)).url;
}
