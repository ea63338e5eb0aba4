/**
 * The download tools an admin would use, against a primary and one replica
 * of the Mac's site (real processes, the tools bound to the Mac's loopback
 * address): curl -L, wget and aria2c follow the primary's 302 to the replica
 * and end with the right bytes, and each resumes an interrupted transfer
 * (a prefix fetched with curl --range through the same link) from the
 * replica, which serves only the rest.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import { testBytes } from '../helpers/env.js';
import {
  addPackage,
  api,
  baseOf,
  cliToken,
  cluster,
  curlFollow,
  sentTo,
  tool,
  waitUpWith,
  type Cluster,
  type Node,
} from './helpers.js';
import { waitForValue } from '../helpers/wait.js';

const MAC = '127.0.0.2';
const MiB = 1024 * 1024;

const sha256Of = async (file: string): Promise<string> =>
  createHash('sha256')
    .update(await fs.readFile(file))
    .digest('hex');

interface Served {
  status: number;
  bytes: number;
}

describe('curl, wget and aria2c through a redirect to the branch replica', () => {
  let nodes: Cluster;
  let primary: Node;
  let replica: Node;
  const data = testBytes(3 * MiB + 17, 'sites-clients');
  let sha: string;
  let link: string;
  let location: string;
  let work: string;

  beforeAll(async () => {
    nodes = await cluster();
    primary = await nodes.node('primary');
    const admin = await cliToken(primary, 'admin', 'admin');
    await primary.start();
    const sync = await api<{ token: string }>(primary.url, admin, 'POST', '/tokens', { name: 'branch', scope: 'sync' });
    expect(sync.status, sync.text).toBe(201);
    sha = await addPackage(primary, admin, data, 'Golden');
    link = `${primary.url}/d/${sha}/Golden.pvmp`;
    const site = await api(primary.url, admin, 'POST', '/sites', { name: 'branch', networks: [`${MAC}/32`] });
    expect(site.status, site.text).toBe(201);
    replica = await nodes.node('replica', {
      MIRROR_SYNC_FROM: primary.url,
      MIRROR_SYNC_TOKEN: sync.body.token,
      MIRROR_SITE: 'branch',
      MIRROR_SYNC_INTERVAL: '1h',
    });
    await replica.start();
    await waitUpWith(primary, admin, replica, [sha]);
    location = `${replica.url}/d/${sha}/Golden.pvmp`;
    await waitForValue(async () => (baseOf(await sentTo(primary, sha, MAC)) === replica.url ? true : undefined), {
      what: 'the Mac to be sent to the replica',
      timeoutMs: 15_000,
      intervalMs: 100,
    });
    work = path.join(nodes.dir, 'downloads');
    await fs.mkdir(work);
  });
  afterAll(async () => {
    await nodes?.close();
  });
  beforeEach(() => onTestFailed(() => console.log(nodes.logs())));

  /**
   * The downloads the replica logged as finished since `mark` (a length of its log), status and bytes sent, once
   * one has `status`: the line comes just after the last byte went out, when the tool may have exited already.
   */
  const servedSince = (mark: number, status: number): Promise<Served[]> =>
    waitForValue(
      () => {
        const served = replica
          .log()
          .slice(mark)
          .split('\n')
          .filter((l) => l.includes('"msg":"download finished"'))
          .map((l) => JSON.parse(l) as Served)
          .map(({ status, bytes }) => ({ status, bytes }));
        return served.some((d) => d.status === status) ? served : undefined;
      },
      { what: `the replica to log a download with status ${status}`, timeoutMs: 5000, intervalMs: 20 },
    );

  /** The first `size` bytes through the same link, as an interrupted transfer leaves them (curl --range). */
  async function prefix(file: string, size: number): Promise<void> {
    const got = await curlFollow(link, MAC, file, ['--range', `0-${size - 1}`]);
    expect(got, got.stderr).toMatchObject({ code: 0, status: 206, redirects: 1, finalUrl: location });
    expect((await fs.stat(file)).size).toBe(size);
  }

  it('curl -L follows the 302 to the replica and gets the right bytes; curl -C - resumes there after a cut', async () => {
    const whole = path.join(work, 'curl-whole.pvmp');
    const mark = replica.log().length;
    const got = await curlFollow(link, MAC, whole);
    expect(got, got.stderr).toMatchObject({ code: 0, status: 200, redirects: 1, finalUrl: location });
    expect(await sha256Of(whole)).toBe(sha);
    expect(await servedSince(mark, 200)).toEqual([{ status: 200, bytes: data.length }]);

    const partial = path.join(work, 'curl-resumed.pvmp');
    const done = 1 * MiB + 3;
    await prefix(partial, done);
    const resumeMark = replica.log().length;
    const resumed = await curlFollow(link, MAC, partial, ['--continue-at', '-']);
    expect(resumed, resumed.stderr).toMatchObject({ code: 0, status: 206, redirects: 1, finalUrl: location });
    expect(await sha256Of(partial)).toBe(sha);
    expect(await servedSince(resumeMark, 206)).toEqual([{ status: 206, bytes: data.length - done }]);

    // A transfer that stops early: curl's output is cut after `have` bytes (head closes the pipe), then resumed.
    const cut = path.join(work, 'curl-cut.pvmp');
    const have = 2 * MiB + 1;
    const stopped = await tool(
      'sh',
      ['-c', `curl --silent --location --interface ${MAC} '${link}' | head --bytes ${have} > '${cut}'`],
      work,
    );
    expect(stopped.code, stopped.stderr).toBe(0);
    expect((await fs.stat(cut)).size).toBe(have);
    const cutMark = replica.log().length;
    const finished = await curlFollow(link, MAC, cut, ['--continue-at', '-']);
    expect(finished, finished.stderr).toMatchObject({ code: 0, status: 206, redirects: 1, finalUrl: location });
    expect(await sha256Of(cut)).toBe(sha);
    expect(await servedSince(cutMark, 206)).toEqual([{ status: 206, bytes: data.length - have }]);
  });

  it('wget follows the 302 to the replica and gets the right bytes; wget -c resumes there', async () => {
    const wget = (file: string, extra: string[] = []) =>
      tool('wget', ['--bind-address', MAC, '--tries', '1', '--output-document', file, ...extra, link], work);
    const whole = path.join(work, 'wget-whole.pvmp');
    const mark = replica.log().length;
    const got = await wget(whole);
    expect(got.code, got.stderr).toBe(0);
    expect(got.stderr).toContain(`Location: ${location} [following]`);
    expect(await sha256Of(whole)).toBe(sha);
    expect(await servedSince(mark, 200)).toEqual([{ status: 200, bytes: data.length }]);

    const partial = path.join(work, 'wget-resumed.pvmp');
    const done = 2 * MiB + 5;
    await prefix(partial, done);
    const resumeMark = replica.log().length;
    const resumed = await wget(partial, ['--continue']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toContain(`Location: ${location} [following]`);
    expect(resumed.stderr).toContain('206 Partial Content');
    expect(await sha256Of(partial)).toBe(sha);
    expect(await servedSince(resumeMark, 206)).toEqual([{ status: 206, bytes: data.length - done }]);
  });

  it('aria2c follows the 302 to the replica and gets the right bytes; aria2c --continue resumes there', async () => {
    const aria2c = (name: string, extra: string[] = []) =>
      tool(
        'aria2c',
        [
          `--interface=${MAC}`,
          `--dir=${work}`,
          `--out=${name}`,
          '--file-allocation=none',
          '--max-tries=1',
          '--console-log-level=warn',
          '--summary-interval=0',
          `--log=${path.join(work, `${name}.log`)}`,
          '--log-level=info',
          ...extra,
          link,
        ],
        work,
      );
    const mark = replica.log().length;
    const got = await aria2c('aria2c-whole.pvmp');
    expect(got.code, got.stdout + got.stderr).toBe(0);
    expect(await fs.readFile(path.join(work, 'aria2c-whole.pvmp.log'), 'utf8')).toContain(location);
    expect(await sha256Of(path.join(work, 'aria2c-whole.pvmp'))).toBe(sha);
    expect(await servedSince(mark, 200)).toEqual([{ status: 200, bytes: data.length }]);

    const partial = path.join(work, 'aria2c-resumed.pvmp');
    const done = MiB / 2 + 7;
    await prefix(partial, done);
    const resumeMark = replica.log().length;
    const resumed = await aria2c('aria2c-resumed.pvmp', ['--continue=true']);
    expect(resumed.code, resumed.stdout + resumed.stderr).toBe(0);
    expect(await fs.readFile(path.join(work, 'aria2c-resumed.pvmp.log'), 'utf8')).toContain(location);
    expect(await sha256Of(partial)).toBe(sha);
    // aria2c may first ask without a range (for the length) and drop that answer; then it asks from a block
    // boundary at or below what the file holds, and the replica sends only the rest.
    const ranged = (await servedSince(resumeMark, 206)).filter((d) => d.status === 206);
    expect(ranged).toHaveLength(1);
    const resumedFrom = data.length - ranged[0]!.bytes;
    expect(resumedFrom).toBeGreaterThan(0);
    expect(resumedFrom).toBeLessThanOrEqual(done);
    expect(done - resumedFrom).toBeLessThan(64 * 1024);
  });
});
