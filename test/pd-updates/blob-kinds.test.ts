/**
 * Packages and update files share one store but never one role: the same bytes are not taken as both, a
 * published update file cannot be deleted from under the feed, and the package lists leave update files out.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { findBlob } from '../../server/db/repos/blobs.js';
import { cliActor } from '../../server/services/audit.js';
import { deleteBlob, listBlobViews, listPackageViews } from '../../server/services/blobs.js';
import { ingest } from '../../server/services/ingest.js';
import { addUpdateFile, getUpdate, publishUpdate, unpublishUpdate } from '../../server/services/pd-updates/versions.js';
import type { Sha256 } from '../../storage/digest.js';
import { call, expectError, issueToken } from '../helpers/api.js';
import { startMirror, type TestMirror } from '../helpers/env.js';
import { fakeDmg, sha256Of } from '../helpers/pd-upstream.js';

const PUBLIC = 'http://mirror.example.lan:8080';

describe('packages and update files', () => {
  let mirror: TestMirror;
  beforeEach(async () => {
    mirror = await startMirror({ publicUrl: PUBLIC });
  });
  afterEach(async () => {
    await mirror.close();
  });

  const add = (bytes: Buffer, version: string) =>
    addUpdateFile({ ...mirror.runtime.ingestDeps, config: mirror.runtime.config }, cliActor, {
      source: [bytes],
      what: `ParallelsDesktop-${version}.dmg`,
      version,
    });

  it('refuses to take a stored package’s bytes as an update file, and the package keeps serving', async () => {
    const bytes = fakeDmg(300_000, 'both');
    await ingest(mirror.runtime.ingestDeps, { source: [bytes], fileName: 'Win11.pvmp' });
    await expect(add(bytes, '26.3.3-57507')).rejects.toMatchObject({ code: 'UPDATE_FILE_INVALID' });
    const blob = await findBlob(mirror.runtime.db, sha256Of(bytes) as Sha256);
    expect(blob).toMatchObject({ kind: 'package', name: 'Win11.pvmp' });
    expect((await fetch(`${mirror.url}/d/${sha256Of(bytes)}/Win11.pvmp`)).status).toBe(200);
    expect((await fetch(`${mirror.url}/d/${sha256Of(bytes)}/x.dmg`)).status).toBe(404);
  });

  it('keeps a published update file from being deleted; once unpublished it can be, and the version says so', async () => {
    const bytes = fakeDmg(200_000, 'published');
    const sha256 = sha256Of(bytes);
    await add(bytes, '26.3.3-57507');
    await publishUpdate(mirror.runtime, cliActor, '26.3.3-57507');
    const token = await issueToken(mirror, 'admin');
    const refused = await call(mirror.url, 'DELETE', `/api/v1/blobs/${sha256}`, { token });
    expect(expectError(refused, 409, 'BLOB_IN_USE').message).toMatch(/Parallels Desktop 26\.3\.3-57507; unpublish/);
    expect((await fetch(`${mirror.url}/d/${sha256}/ParallelsDesktop-26.3.3-57507.dmg`)).status).toBe(200);

    await unpublishUpdate(mirror.runtime, cliActor, '26.3.3-57507');
    await deleteBlob(mirror.runtime, cliActor, sha256, null);
    expect(await getUpdate(mirror.runtime, '26.3.3-57507')).toMatchObject({ state: 'collected', sha256 });
    await expect(publishUpdate(mirror.runtime, cliActor, '26.3.3-57507')).rejects.toMatchObject({
      code: 'UPDATE_NOT_STORED',
    });
  });

  it('lists update files with their kind in the API, and leaves them out of the package lists', async () => {
    const pkg = fakeDmg(100_000, 'a-package');
    await ingest(mirror.runtime.ingestDeps, { source: [pkg], fileName: 'Mac.pvmp' });
    const dmg = fakeDmg(120_000, 'an-update');
    await add(dmg, '26.3.2-57480');
    const all = await listBlobViews(mirror.runtime, PUBLIC);
    expect(all.map((b) => [b.kind, b.url]).sort()).toEqual([
      ['package', `${PUBLIC}/d/${sha256Of(pkg)}/Mac.pvmp`],
      ['update', `${PUBLIC}/d/${sha256Of(dmg)}/ParallelsDesktop-26.3.2-57480.dmg`],
    ]);
    expect((await listPackageViews(mirror.runtime, PUBLIC)).map((b) => b.sha256)).toEqual([sha256Of(pkg)]);
    const token = await issueToken(mirror, 'reader');
    const api = await call<Array<{ sha256: string; kind: string }>>(mirror.url, 'GET', '/api/v1/blobs', { token });
    expect(api.body.find((b) => b.sha256 === sha256Of(dmg))?.kind).toBe('update');
  });
});
