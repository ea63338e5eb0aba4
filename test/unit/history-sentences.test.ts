/**
 * The History page's sentences for the Parallels Desktop update actions, from audit entries built in memory
 * with the details the services record (and without them, as an older or hand-written entry may be).
 */
import { describe, expect, it } from 'vitest';
import type { AuditEntry } from '../../server/services/audit.js';
import { sentence, type Names } from '../../server/services/history-sentences.js';

const noNames: Names = { images: new Map(), groups: new Map(), blobs: new Map() };
const stored = 'a'.repeat(64);
const upstream = 'b'.repeat(64);
const url = 'https://download.parallels.com/desktop/v26/26.3.3-57507/ParallelsDesktop-26.3.3-57507.dmg';

function read(actor: string, action: string, version: string, details: unknown = {}): string {
  const entry: AuditEntry = {
    id: 1,
    at: '2026-11-02T10:15:00.000Z',
    actor,
    action,
    target: `update:${version}`,
    details,
  };
  return sentence(entry, noNames)
    .map((p) => p.text)
    .join('');
}

describe('history sentences of Parallels Desktop updates', () => {
  it('publish, by hand and automatically', () => {
    expect(read('user:admin', 'update.publish', '26.3.3-57507')).toBe('admin published Parallels Desktop 26.3.3-57507');
    expect(read('system:goldmirror', 'update.publish', '26.3.3-57507', { auto: true })).toBe(
      'goldmirror published Parallels Desktop 26.3.3-57507 automatically (MIRROR_PD_UPDATES_AUTO_PUBLISH)',
    );
  });

  it('unpublish and rollback, with and without newer versions taken out', () => {
    expect(read('token:ci', 'update.unpublish', '26.3.3-57507')).toBe(
      'API token “ci” took Parallels Desktop 26.3.3-57507 out of the update feed',
    );
    expect(
      read('user:admin', 'update.rollback', '26.3.1-57400', { unpublished: ['26.3.3-57507', '26.3.2-57480'] }),
    ).toBe(
      'admin rolled Parallels Desktop back to 26.3.1-57400, taking 26.3.3-57507, 26.3.2-57480 out of the update feed',
    );
    expect(read('user:admin', 'update.rollback', '26.3.1-57400', { unpublished: [] })).toBe(
      'admin rolled Parallels Desktop back to 26.3.1-57400 (no newer version was published)',
    );
  });

  it('a file added by hand, published at once or not', () => {
    expect(
      read('cli:root', 'update.add', '26.3.3-57507', { sha256: stored, size: 1_234_567_890, published: true }),
    ).toBe('root (command line) added Parallels Desktop 26.3.3-57507 from a file (1.2 GB) and published it');
    expect(read('user:admin', 'update.add', '26.3.3-57507', { sha256: stored, size: 2048, published: false })).toBe(
      'admin added Parallels Desktop 26.3.3-57507 from a file (2.0 kB)',
    );
    expect(read('user:admin', 'update.add', '26.3.3-57507')).toBe(
      'admin added Parallels Desktop 26.3.3-57507 from a file',
    );
  });

  it('a download from upstream, and an alert for changed bytes', () => {
    expect(read('system:goldmirror', 'update.fetch', '26.3.3-57507', { url, sha256: stored, size: 3_000_000 })).toBe(
      `goldmirror downloaded Parallels Desktop 26.3.3-57507 (3.0 MB) from ${url}`,
    );
    expect(read('system:goldmirror', 'update.alert', '26.3.3-57507', { url, stored, upstream })).toBe(
      `goldmirror found that the file of Parallels Desktop 26.3.3-57507 changed upstream (${url}): stored sha256 ` +
        'aaaaaaaaaaaa…, upstream now bbbbbbbbbbbb…; the stored file is still the one served',
    );
    expect(read('system:goldmirror', 'update.alert', '26.3.3-57507')).toBe(
      'goldmirror found that the file of Parallels Desktop 26.3.3-57507 changed upstream; the stored file is still the one served',
    );
  });

  it('closing an alert, keeping the stored file or taking the new bytes', () => {
    expect(read('user:admin', 'update.alert-dismiss', '26.3.3-57507', { kept: stored })).toBe(
      'admin closed the alert of Parallels Desktop 26.3.3-57507, keeping the stored file',
    );
    expect(read('user:admin', 'update.alert-take', '26.3.3-57507', { from: stored, to: upstream })).toBe(
      'admin closed the alert of Parallels Desktop 26.3.3-57507 by taking the new bytes (sha256 bbbbbbbbbbbb…)',
    );
  });

  it('no update action falls back to the generic "did … on …" sentence', () => {
    for (const action of ['publish', 'unpublish', 'rollback', 'add', 'fetch', 'alert', 'alert-dismiss', 'alert-take'])
      expect(read('user:admin', `update.${action}`, '26.3.3-57507')).not.toContain(' did update.');
  });
});
