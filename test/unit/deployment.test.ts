import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');
const read = (file: string) => readFileSync(path.join(root, file), 'utf8');
const pkg = JSON.parse(read('package.json')) as {
  engines: { node: string };
  scripts: Record<string, string>;
  bin: Record<string, string>;
};
const dockerfile = read('Dockerfile');

describe('Dockerfile agrees with the package', () => {
  const minMajor = Number(/^>=(\d+)$/.exec(pkg.engines.node)?.[1]);

  it('builds and runs on one Node major that "engines" allows (the addon is built for that ABI)', () => {
    const froms = [...dockerfile.matchAll(/^FROM\s+node:(\d+)/gm)].map((m) => Number(m[1]));
    expect(froms.length).toBeGreaterThanOrEqual(2);
    expect(new Set(froms).size).toBe(1);
    expect(froms[0]).toBeGreaterThanOrEqual(minMajor);
    expect(minMajor).toBe(20);
  });

  it('starts the same command as npm start', () => {
    // npm start = "node bin/goldmirror.js serve"
    expect(pkg.scripts.start).toBe('node bin/goldmirror.js serve');
    expect(pkg.bin.goldmirror).toBe('bin/goldmirror.js');
    expect(dockerfile).toMatch(/ENTRYPOINT \[[^\]]*"node", "bin\/goldmirror\.js"\]/);
    expect(dockerfile).toMatch(/CMD \["serve"\]/);
  });

  it('keeps the data dir on a volume and runs as a non-root user with an init and a health check', () => {
    const dataDir = /MIRROR_DATA_DIR=(\S+)/.exec(dockerfile)?.[1];
    expect(dataDir).toBe('/data');
    expect(dockerfile).toContain(`VOLUME ["${dataDir}"]`);
    expect(dockerfile).toMatch(/^USER\s+(?!root\b)\w+/m);
    expect(dockerfile).toMatch(/ENTRYPOINT \["\/usr\/bin\/tini", "--"/);
    expect(dockerfile).toMatch(/HEALTHCHECK[\s\S]*\/healthz/);
  });

  it('copies every source directory the build needs', () => {
    for (const dir of ['config', 'storage', 'server', 'web', 'bin'])
      expect(dockerfile).toMatch(new RegExp(`^COPY ${dir} \\./${dir}$`, 'm'));
    expect(dockerfile).toMatch(/npm ci/);
    expect(dockerfile).toMatch(/npm run build/);
  });

  it('has a systemd unit that runs the same command on the same data layout', () => {
    const unit = read('deploy/goldmirror.service');
    expect(unit).toMatch(/^ExecStart=\/usr\/bin\/node bin\/goldmirror\.js serve$/m);
    expect(unit).toMatch(/^Environment=MIRROR_DATA_DIR=\/var\/lib\/goldmirror$/m);
    expect(unit).toMatch(/^ReadWritePaths=\/var\/lib\/goldmirror$/m);
  });
});
