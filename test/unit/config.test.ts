import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/load.js';
import { parseBytes, parseDuration } from '../../config/units.js';
import { makeTempDir, problemsOf } from '../helpers/env.js';

describe('config', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await makeTempDir();
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  async function file(name: string, text: string): Promise<string> {
    const p = path.join(dir, name);
    await fs.writeFile(p, text);
    return p;
  }

  it('has the documented defaults', () => {
    const config = loadConfig({ env: {} });
    expect(config).toMatchObject({ host: '0.0.0.0', port: 8080, dataDir: './data', publicUrl: '', maxBytesPerSec: 0 });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('applies defaults < file < environment < overrides', async () => {
    const p = await file('a.json', JSON.stringify({ port: 9000, host: '127.0.0.1', dataDir: '/srv/file' }));
    expect(loadConfig({ configPath: p, env: {} })).toMatchObject({
      port: 9000,
      host: '127.0.0.1',
      dataDir: '/srv/file',
    });
    const env = { MIRROR_PORT: '9100', MIRROR_DATA_DIR: '/srv/env' };
    expect(loadConfig({ configPath: p, env })).toMatchObject({ port: 9100, host: '127.0.0.1', dataDir: '/srv/env' });
    expect(loadConfig({ configPath: p, env, overrides: { port: 9200 } })).toMatchObject({ port: 9200 });
    expect(loadConfig({ env: { ...env, MIRROR_CONFIG: p } })).toMatchObject({ host: '127.0.0.1', port: 9100 });
  });

  it('reads the shipped example file, comments and all', () => {
    const config = loadConfig({
      configPath: path.join(import.meta.dirname, '../../config/goldmirror.example.jsonc'),
      env: {},
    });
    expect(config).toMatchObject({
      publicUrl: 'http://mirror.example.lan:8080',
      minFreeBytes: 2 ** 30,
      shutdownTimeoutMs: 30_000,
    });
  });

  it('accepts units for sizes and durations from the environment', () => {
    const config = loadConfig({
      env: { MIRROR_MAX_BYTES_PER_SEC: '50MB', MIRROR_MIN_FREE_BYTES: '2GiB', MIRROR_SHUTDOWN_TIMEOUT: '1m' },
    });
    expect(config).toMatchObject({ maxBytesPerSec: 50e6, minFreeBytes: 2 * 2 ** 30, shutdownTimeoutMs: 60_000 });
  });

  it('normalises the public URL and rejects non-http ones', () => {
    expect(loadConfig({ env: { MIRROR_PUBLIC_URL: 'https://m.lan:8443/mirror/' } }).publicUrl).toBe(
      'https://m.lan:8443/mirror',
    );
    expect(problemsOf(() => loadConfig({ env: { MIRROR_PUBLIC_URL: 'ftp://x' } }))).toEqual([
      'MIRROR_PUBLIC_URL: must be an absolute http:// or https:// URL',
    ]);
  });

  it('reads the Parallels Desktop update settings, one feed URL or several, and refuses non-http ones', () => {
    const config = loadConfig({
      env: {
        MIRROR_PD_UPDATES_UPSTREAM:
          'https://u.example/v26/parallels_updates.xml, https://u.example/v25/parallels_updates.xml',
        MIRROR_PD_UPDATES_INTERVAL: '0',
        MIRROR_PD_UPDATES_AUTO_PUBLISH: 'true',
        MIRROR_PD_UPDATES_KEEP: '5',
      },
    });
    expect(config).toMatchObject({
      pdUpdatesUpstream: ['https://u.example/v26/parallels_updates.xml', 'https://u.example/v25/parallels_updates.xml'],
      pdUpdatesIntervalMs: 0,
      pdUpdatesAutoPublish: true,
      pdUpdatesKeep: 5,
    });
    expect(loadConfig({ env: {} })).toMatchObject({ pdUpdatesUpstream: [], pdUpdatesIntervalMs: 6 * 3600_000 });
    const problems = problemsOf(() => loadConfig({ env: { MIRROR_PD_UPDATES_UPSTREAM: 'file:///etc/passwd' } }));
    expect(problems).toEqual(['MIRROR_PD_UPDATES_UPSTREAM: file:///etc/passwd is not an http(s) URL']);
  });

  it('names every bad key at once', async () => {
    const p = await file('bad.json', JSON.stringify({ port: 70000, colour: 'blue', logLevel: 'loud' }));
    const problems = problemsOf(() =>
      loadConfig({ configPath: p, env: { MIRROR_MAX_BYTES_PER_SEC: 'fast', MIRROR_HOST: '' } }),
    );
    expect(problems).toHaveLength(5);
    expect(problems.join('\n')).toContain('MIRROR_MAX_BYTES_PER_SEC: must be a byte count');
    expect(problems.join('\n')).toContain(`${p}: port`);
    expect(problems.join('\n')).toContain(`${p}: colour: unknown setting`);
    expect(problems.join('\n')).toContain(`${p}: logLevel`);
    expect(problems.join('\n')).toContain('MIRROR_HOST');
  });

  it('reads the S3 settings from the environment and checks they fit together', () => {
    const config = loadConfig({
      env: {
        MIRROR_STORAGE: 's3',
        MIRROR_S3_BUCKET: 'golden-images',
        MIRROR_S3_PREFIX: '/mirrors//lab/',
        MIRROR_S3_ENDPOINT: 'https://s3.example.lan:9000/',
        MIRROR_S3_FORCE_PATH_STYLE: 'true',
        MIRROR_S3_ACCESS_KEY_ID: 'key',
        MIRROR_S3_SECRET_ACCESS_KEY: 'secret',
        MIRROR_S3_DOWNLOADS: 'redirect',
        MIRROR_S3_PRESIGN_EXPIRY: '10m',
      },
    });
    expect(config).toMatchObject({
      storage: 's3',
      s3Bucket: 'golden-images',
      s3Prefix: 'mirrors/lab',
      s3Endpoint: 'https://s3.example.lan:9000',
      s3Region: 'us-east-1',
      s3ForcePathStyle: true,
      s3Downloads: 'redirect',
      s3PresignExpiryMs: 600_000,
    });
    expect(problemsOf(() => loadConfig({ env: { MIRROR_STORAGE: 's3' } }))).toEqual([
      's3Bucket: MIRROR_S3_BUCKET is required with MIRROR_STORAGE=s3',
    ]);
    expect(
      problemsOf(() =>
        loadConfig({ env: { MIRROR_STORAGE: 's3', MIRROR_S3_BUCKET: 'images', MIRROR_S3_ACCESS_KEY_ID: 'only-half' } }),
      ),
    ).toEqual(['s3SecretAccessKey: MIRROR_S3_ACCESS_KEY_ID and MIRROR_S3_SECRET_ACCESS_KEY go together']);
    expect(problemsOf(() => loadConfig({ env: { MIRROR_S3_DOWNLOADS: 'redirect' } }))).toEqual([
      'MIRROR_S3_DOWNLOADS: redirect needs MIRROR_STORAGE=s3 (packages on disk are always streamed)',
    ]);
    expect(problemsOf(() => loadConfig({ env: { MIRROR_S3_PREFIX: 'a/../b' } }))[0]).toMatch(
      /^MIRROR_S3_PREFIX: may hold only/,
    );
    expect(problemsOf(() => loadConfig({ env: { MIRROR_STORAGE: 'nfs' } }))[0]).toMatch(/^MIRROR_STORAGE: /);
  });

  it('rejects a non-integer port from the environment', () => {
    expect(problemsOf(() => loadConfig({ env: { MIRROR_PORT: '80a' } }))).toEqual([
      'MIRROR_PORT: must be an integer, got "80a"',
    ]);
  });

  it('reports unreadable and malformed files with their location', async () => {
    expect(problemsOf(() => loadConfig({ configPath: path.join(dir, 'missing.json'), env: {} }))[0]).toMatch(
      /cannot read config file \(ENOENT\)/,
    );
    const p = await file('broken.json', '{\n  "port": 8080,\n  "host" "x"\n}');
    expect(problemsOf(() => loadConfig({ configPath: p, env: {} }))[0]).toMatch(new RegExp(`${p}:3:\\d+: `));
    const arr = await file('array.json', '[1]');
    expect(problemsOf(() => loadConfig({ configPath: arr, env: {} }))).toEqual([`${arr}: must hold a JSON object`]);
  });

  it('parses byte counts and durations', () => {
    expect(parseBytes('1048576')).toBe(1048576);
    expect(parseBytes('1.5 GiB')).toBe(1.5 * 2 ** 30);
    expect(parseBytes('10MB')).toBe(10e6);
    expect(parseBytes('10 parsecs')).toBeNull();
    expect(parseBytes('-1')).toBeNull();
    expect(parseDuration('7d')).toBe(7 * 86_400_000);
    expect(parseDuration('250')).toBe(250);
    expect(parseDuration('1 fortnight')).toBeNull();
  });
});
