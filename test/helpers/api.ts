/**
 * Helpers for the JSON API tests: an admin on a started mirror, API tokens,
 * sign-in over HTTP, and one fetch wrapper that returns status, headers and
 * the parsed body. Everything goes through the real server and database.
 */
import net from 'node:net';
import { expect } from 'vitest';
import { bootstrapAdmin, createApiToken } from '../../server/services/auth.js';
import type { TestMirror } from './env.js';
import { httpRequest } from './http.js';

export const ADMIN_PASSWORD = 'correct horse battery';

/** Creates user admin the way `goldmirror serve` does at start (one scrypt hash). */
export async function bootstrapTestAdmin(mirror: TestMirror, password = ADMIN_PASSWORD): Promise<void> {
  await bootstrapAdmin(mirror.runtime, mirror.dir, password);
}

/** An API token created straight through the service (no sign-in, no scrypt). */
export async function issueToken(mirror: TestMirror, name: string): Promise<string> {
  const { token } = await createApiToken(mirror.runtime, { kind: 'system', name: 'test-setup' }, name);
  return token;
}

export interface Session {
  /** `gm_session=…`, ready for a Cookie header. */
  cookie: string;
  csrfToken: string;
  /** The raw Set-Cookie header of the sign-in. */
  setCookie: string;
}

export interface ApiResult<T = unknown> {
  status: number;
  headers: Headers;
  text: string;
  body: T;
}

export interface CallOptions {
  /** Sent as JSON with Content-Type: application/json. */
  json?: unknown;
  /** Sent as is (with `contentType`, if given). */
  raw?: string | Buffer;
  contentType?: string;
  token?: string;
  session?: Session;
  /** The X-CSRF-Token to send with a session; defaults to the session's own on unsafe methods, null sends none. */
  csrf?: string | null;
  headers?: Record<string, string>;
}

/** One request to a started mirror; `path` is absolute (e.g. /api/v1/images). */
export async function call<T = unknown>(
  baseUrl: string,
  method: string,
  path: string,
  options: CallOptions = {},
): Promise<ApiResult<T>> {
  const headers: Record<string, string> = { ...options.headers };
  let body: string | Buffer | undefined;
  if (options.json !== undefined) {
    body = JSON.stringify(options.json);
    headers['content-type'] = 'application/json';
  } else if (options.raw !== undefined) {
    body = options.raw;
    if (options.contentType) headers['content-type'] = options.contentType;
  }
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  if (options.session) {
    headers.cookie = options.session.cookie;
    const unsafe = !['GET', 'HEAD', 'OPTIONS'].includes(method);
    const csrf = options.csrf === undefined ? (unsafe ? options.session.csrfToken : null) : options.csrf;
    if (csrf !== null) headers['x-csrf-token'] = csrf;
  }
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers,
    body: body as RequestInit['body'],
    redirect: 'manual',
  });
  const text = await res.text();
  let parsed: unknown = undefined;
  if ((res.headers.get('content-type') ?? '').includes('json') && text !== '') parsed = JSON.parse(text);
  return { status: res.status, headers: res.headers, text, body: parsed as T };
}

/** Signs in over HTTP; returns the raw answer and, on 200, the session. */
export interface SignInBody {
  username: string;
  csrfToken: string;
  expiresAt: string;
}

export async function signIn(
  baseUrl: string,
  password = ADMIN_PASSWORD,
  username = 'admin',
): Promise<{ res: ApiResult<SignInBody>; session: Session | null }> {
  const res = await call<SignInBody>(baseUrl, 'POST', '/api/v1/session', { json: { username, password } });
  if (res.status !== 200) return { res, session: null };
  const setCookie = res.headers.getSetCookie().find((c) => c.startsWith('gm_session=')) ?? '';
  const cookie = setCookie.split(';')[0] ?? '';
  return { res, session: { cookie, csrfToken: res.body.csrfToken, setCookie } };
}

/** Signs in and fails the test if that does not work. */
export async function mustSignIn(baseUrl: string, password = ADMIN_PASSWORD): Promise<Session> {
  const { res, session } = await signIn(baseUrl, password);
  expect(res.status, res.text).toBe(200);
  return session!;
}

/** The API's error body; details (fields, usedBy, …) sit next to code and message. */
export interface ErrorBody {
  error: { code: string; message: string } & Record<string, unknown>;
}

/** The `error` object of an answer, or undefined when it has none. */
export function errorOf(res: ApiResult<unknown>): ErrorBody['error'] | undefined {
  const body = res.body as Partial<ErrorBody> | undefined;
  return typeof body === 'object' && body !== null ? body.error : undefined;
}

/** Asserts the API's error shape: `{"error":{"code","message"}}` with this status and code; returns the error. */
export function expectError(res: ApiResult<unknown>, status: number, code: string): ErrorBody['error'] {
  const error = errorOf(res);
  expect({ status: res.status, code: error?.code }, res.text).toEqual({ status, code });
  expect(typeof error!.message).toBe('string');
  expect(error!.message.length).toBeGreaterThan(0);
  expect(Object.keys(res.body as object)).toEqual(['error']);
  return error!;
}

/** A TCP port on 127.0.0.1 that nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

/**
 * A request through node:http, writing `chunks` with backpressure; no
 * Content-Length header makes it chunked. Used where fetch (undici) cannot
 * be: it reports a socket error instead of the answer when the server
 * answers (413) before the upload has ended; node:http reads the answer.
 */
export async function rawRequest(
  baseUrl: string,
  options: { method: string; path: string; headers: Record<string, string | number>; chunks: Array<string | Buffer> },
): Promise<{ status: number; body: string }> {
  const { status, body } = await httpRequest(`${baseUrl}${options.path}`, {
    method: options.method,
    headers: options.headers,
    body: options.chunks,
  });
  return { status, body };
}

/*
 * Asymmetric matchers typed as the values they stand for: vitest types
 * expect.any() and friends as `any`, which the lint rules refuse in objects.
 */
export const anyNumber = (): number => expect.any(Number) as number;
export const anyString = (): string => expect.any(String) as string;
export const matching = (pattern: RegExp): string => expect.stringMatching(pattern) as string;
export const containing = (text: string): string => expect.stringContaining(text) as string;
export const like = <T extends object>(partial: T): T =>
  (expect.objectContaining as (expected: unknown) => unknown)(partial) as T;

/** Every page of the admin console, with one image, group and package to show, for tests that check each page. */
export function consolePages(shown: { imageId: number; groupId: number; sha256: string }): string[] {
  return [
    '/admin',
    '/admin/images',
    '/admin/images/new',
    `/admin/images/${shown.imageId}`,
    `/admin/images/${shown.imageId}/edit`,
    `/admin/images/${shown.imageId}/delete`,
    '/admin/groups',
    `/admin/groups/${shown.groupId}`,
    '/admin/blobs',
    `/admin/blobs/${shown.sha256}`,
    '/admin/upload',
    '/admin/sites',
    '/admin/updates',
    '/admin/downloads',
    '/admin/history',
    '/admin/settings',
    '/admin/account',
    '/admin/tokens',
  ];
}
