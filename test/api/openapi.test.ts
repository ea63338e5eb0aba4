/**
 * The OpenAPI document: it needs credentials like the rest of the API, is a
 * valid OpenAPI 3.1 document, names every /api/v1 route of the app (and no
 * route that does not exist), and the route layer that checks requests
 * against its schemas answers bad input exactly as the services do.
 */
import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUploadServer } from '../../server/http/uploads.js';
import { createApp } from '../../server/app.js';
import { cliActor } from '../../server/services/audit.js';
import { createApiToken } from '../../server/services/auth.js';
import { addUpdateFile } from '../../server/services/pd-updates/versions.js';
import { bootstrapTestAdmin, issueToken } from '../helpers/api.js';
import { putBlob, startMirror, testBytes, type TestMirror } from '../helpers/env.js';
import { fakeDmg } from '../helpers/pd-upstream.js';

interface Operation {
  summary?: string;
}
interface Document {
  openapi: string;
  servers: Array<{ url: string }>;
  paths: Record<string, Record<string, Operation>>;
}

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

describe('OpenAPI document', () => {
  let m: TestMirror;
  let app: ReturnType<typeof createApp>;
  let token: string;
  let readToken: string;
  let doc: Document;

  const request = (
    method: string,
    path: string,
    init: { token?: string; body?: string; type?: string } = {},
  ): Promise<Response> => {
    const headers: Record<string, string> = {};
    if (init.token) headers.authorization = `Bearer ${init.token}`;
    if (init.type) headers['content-type'] = init.type;
    return Promise.resolve(app.request(path, { method, headers, body: init.body }));
  };

  beforeAll(async () => {
    m = await startMirror();
    await bootstrapTestAdmin(m);
    const { ingestDeps, store, log } = m.runtime;
    app = createApp({
      ...m.runtime,
      uploads: await createUploadServer({ ingestDeps, store, log, baseUrl: async () => null }),
    });
    token = await issueToken(m, 'openapi');
    readToken = (await createApiToken(m.runtime, { kind: 'system', name: 'test-setup' }, 'openapi-read', 'read')).token;
    const res = await request('GET', '/api/v1/openapi.json', { token: readToken });
    expect(res.status).toBe(200);
    doc = (await res.json()) as Document;
  });
  afterAll(async () => {
    await m?.close();
  });

  it('needs credentials like the rest of the API', async () => {
    for (const headers of [
      {},
      { authorization: `Bearer gm_${'A'.repeat(43)}` },
      { cookie: 'gm_session=forged' },
    ] as Array<Record<string, string>>) {
      const res = await app.request('/api/v1/openapi.json', { headers });
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('UNAUTHORIZED');
    }
  });

  it('is a valid OpenAPI 3.1 document', async () => {
    const validator = new Validator();
    const result = await validator.validate(structuredClone(doc) as unknown as Parameters<Validator['validate']>[0]);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
    expect(doc.servers).toEqual([{ url: '/api/v1' }]);
    // Named schemas are shared through components, not repeated.
    expect(JSON.stringify(doc)).toContain('"$ref":"#/components/schemas/Image"');
  });

  it('names every /api/v1 route of the app with its method, and nothing the app does not serve', () => {
    const documented = new Set<string>();
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const method of Object.keys(item))
        if (HTTP_METHODS.includes(method)) documented.add(`${method.toUpperCase()} ${path}`);
    }
    const toDocPath = (routePath: string): string =>
      routePath.slice('/api/v1'.length).replace(/:(\w+)(\{[^}]*\})?/g, '{$1}');
    const served = new Set<string>();
    const servedAnyMethod = new Set<string>();
    let walked = 0;
    for (const route of app.routes) {
      if (!route.path.startsWith('/api/v1/')) continue;
      // use() middleware patterns show up as ALL with a wildcard: guards, not routes.
      if (route.method === 'ALL' && route.path.endsWith('*')) continue;
      walked++;
      const path = toDocPath(route.path);
      if (route.method === 'ALL') {
        // The tus server answers several methods behind one all() route: at least one must be documented.
        servedAnyMethod.add(path);
        expect({
          route: `${route.method} ${route.path}`,
          documented: Object.keys(doc.paths[path] ?? {}).some((k) => HTTP_METHODS.includes(k)),
        }).toEqual({
          route: `${route.method} ${route.path}`,
          documented: true,
        });
        continue;
      }
      served.add(`${route.method} ${path}`);
      expect({ route: `${route.method} ${route.path}`, documented: documented.has(`${route.method} ${path}`) }).toEqual(
        {
          route: `${route.method} ${route.path}`,
          documented: true,
        },
      );
    }
    // The walk must see the real table, not an empty or partial one.
    expect(walked).toBeGreaterThanOrEqual(45);
    for (const known of [
      'GET /images/{id}',
      'POST /images/{id}/portal/confirm',
      'DELETE /tokens/{name}',
      'POST /groups.csv',
      'GET /export/manifest',
      'POST /session',
    ]) {
      expect(served).toContain(known);
    }
    for (const operation of documented) {
      const [method = '', path = ''] = operation.split(' ');
      const real =
        served.has(operation) || servedAnyMethod.has(path) || (method === 'HEAD' && served.has(`GET ${path}`));
      expect({ operation, real }).toEqual({ operation, real: true });
    }
  });

  it('every operation has a summary and a tag; sign-in alone needs no credentials', () => {
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, operation] of Object.entries(item)) {
        if (!HTTP_METHODS.includes(method)) continue;
        const op = operation as Operation & { tags?: string[] };
        expect({
          operation: `${method} ${path}`,
          summary: typeof op.summary,
          tagged: (op.tags ?? []).length > 0,
        }).toEqual({
          operation: `${method} ${path}`,
          summary: 'string',
          tagged: true,
        });
      }
    }
    expect(doc.paths['/images']?.post).toMatchObject({
      requestBody: { content: { 'application/json': { schema: { type: 'object' } } } },
    });
    expect(doc.paths['/session']?.post).toMatchObject({ security: [] });
  });

  it('documents every field the answers carry (sampled from real answers)', async () => {
    type Schema = {
      $ref?: string;
      type?: string | string[];
      properties?: Record<string, Schema>;
      items?: Schema;
      anyOf?: Schema[];
      additionalProperties?: unknown;
    };
    const components = (doc as unknown as { components: { schemas: Record<string, Schema> } }).components.schemas;
    const resolve = (schema: Schema): Schema =>
      schema.$ref ? resolve(components[schema.$ref.split('/').pop() ?? ''] ?? {}) : schema;
    const undocumented: string[] = [];
    const walk = (value: unknown, schema: Schema, at: string): void => {
      const s = resolve(schema);
      if (s.anyOf) {
        const fits = s.anyOf
          .map(resolve)
          .find((option) => (value === null ? option.type === 'null' : option.type !== 'null'));
        if (fits) walk(value, fits, at);
        return;
      }
      if (Array.isArray(value)) value.forEach((item, i) => walk(item, s.items ?? {}, `${at}[${i}]`));
      else if (value !== null && typeof value === 'object' && s.properties) {
        for (const [key, child] of Object.entries(value)) {
          const property = s.properties[key];
          if (property) walk(child, property, `${at}.${key}`);
          else if (s.additionalProperties === undefined || s.additionalProperties === false)
            undocumented.push(`${at}.${key}`);
        }
      }
    };
    const sha = await putBlob(m, testBytes(4096, 'openapi-fields'), 'Fields.pvmp');
    const made = await request('POST', '/api/v1/images', {
      token,
      type: 'application/json',
      body: JSON.stringify({ name: 'Fields', arm64: { enabled: true, sha256: sha } }),
    });
    const image = (await made.json()) as { id: number };
    await request('POST', '/api/v1/groups', {
      token,
      type: 'application/json',
      body: JSON.stringify({ name: 'Fields group', imageId: image.id }),
    });
    await addUpdateFile({ ...m.runtime.ingestDeps, config: m.runtime.config }, cliActor, {
      source: [fakeDmg(4096, 'openapi-fields')],
      what: 'a test file',
      version: '26.3.3-57507',
    });
    const samples = [
      '/images',
      `/images/${image.id}`,
      `/images/${image.id}/portal`,
      '/groups',
      '/blobs',
      `/blobs/${sha}`,
      '/settings',
      '/tokens',
      '/verify',
      '/health',
      '/downloads',
      '/audit',
      '/session',
      '/fetch',
      '/uploads',
      '/export/manifest',
      '/updates',
      '/updates/26.3.3-57507',
    ];
    for (const path of samples) {
      const res = await request('GET', `/api/v1${path}`, { token });
      expect({ path, status: res.status }).toEqual({ path, status: 200 });
      const docPath = path
        .replace(/\/\d+(?=\/|$)/, '/{id}')
        .replace(sha, '{sha256}')
        .replace('26.3.3-57507', '{version}');
      const schema = (
        doc.paths[docPath]?.get as
          { responses: Record<string, { content: Record<string, { schema: Schema }> }> } | undefined
      )?.responses['200']?.content['application/json']?.schema;
      expect({ path, documented: schema !== undefined }).toEqual({ path, documented: true });
      walk(await res.json(), schema ?? {}, path);
    }
    expect(undocumented).toEqual([]);
  });

  describe('checking requests answers as the services do', () => {
    const errorOf = async (res: Response): Promise<{ status: number; code: string; message: string }> => {
      const body = (await res.json()) as { error: { code: string; message: string } };
      return { status: res.status, code: body.error.code, message: body.error.message };
    };

    it('a body that breaks the schema: VALIDATION_FAILED naming each field', async () => {
      const res = await request('POST', '/api/v1/images', {
        token,
        type: 'application/json',
        body: JSON.stringify({ name: '', colour: 'red' }),
      });
      expect(await errorOf(res)).toEqual({
        status: 400,
        code: 'VALIDATION_FAILED',
        message: 'invalid image: name: must not be empty; image: Unrecognized key: "colour"',
      });
      const groups = await request('PATCH', '/api/v1/groups/1', {
        token,
        type: 'application/json',
        body: JSON.stringify({ primary: 'yes' }),
      });
      expect(await errorOf(groups)).toEqual({
        status: 400,
        code: 'VALIDATION_FAILED',
        message: 'invalid group: primary: must be true or false',
      });
      const verify = await request('POST', '/api/v1/verify', { token, type: 'application/json', body: '{}' });
      expect(await errorOf(verify)).toEqual({
        status: 400,
        code: 'VALIDATION_FAILED',
        message: 'invalid verify request: verify request: give either sha256 or all: true',
      });
    });

    it('a body that is not JSON: BAD_REQUEST, never the validator’s own answer', async () => {
      const typed = await request('POST', '/api/v1/groups', { token, type: 'text/plain', body: '{"name":"x"}' });
      expect(await errorOf(typed)).toEqual({
        status: 400,
        code: 'BAD_REQUEST',
        message: 'send the request body as JSON (Content-Type: application/json)',
      });
      const broken = await request('POST', '/api/v1/groups', { token, type: 'application/json', body: '{"name":' });
      expect(await errorOf(broken)).toEqual({
        status: 400,
        code: 'BAD_REQUEST',
        message: 'the request body is not valid JSON',
      });
      const untyped = await request('POST', '/api/v1/gc', { token, body: '{}' });
      expect((await errorOf(untyped)).code).toBe('BAD_REQUEST');
    });

    it('a malformed id is a 404 before the body is looked at', async () => {
      const res = await request('PATCH', '/api/v1/images/abc', { token, type: 'text/plain', body: 'not json' });
      expect(await errorOf(res)).toEqual({ status: 404, code: 'NOT_FOUND', message: 'no image with id "abc"' });
      const group = await request('GET', '/api/v1/groups/0', { token });
      expect(await errorOf(group)).toEqual({ status: 404, code: 'NOT_FOUND', message: 'no group with id "0"' });
    });

    it('a bare confirmation POST still counts as an empty body', async () => {
      const image = await request('POST', '/api/v1/images', {
        token,
        type: 'application/json',
        body: JSON.stringify({ name: 'OpenAPI bare confirm' }),
      });
      const { id } = (await image.json()) as { id: number };
      const res = await request('POST', `/api/v1/images/${id}/portal/confirm`, { token });
      expect(res.status).toBe(200);
    });
  });
});
