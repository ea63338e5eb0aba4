import { describe, expect, it } from 'vitest';
import { redactedUrl } from '../../server/db/open.js';

describe('database URLs in messages', () => {
  it('hide every password the pg driver would read, and keep the rest', () => {
    expect(redactedUrl('postgres://gm:s3cret@db.lan:5432/goldmirror?sslmode=require')).toBe(
      'postgres://gm:***@db.lan:5432/goldmirror?sslmode=require',
    );
    const both = redactedUrl('postgresql://gm@db.lan/gm?password=s3cret&sslpassword=k3y&sslmode=verify-full');
    expect(both).not.toMatch(/s3cret|k3y/);
    expect(new URL(both).searchParams.get('sslmode')).toBe('verify-full');
    expect(redactedUrl('postgres://db.lan/gm')).toBe('postgres://db.lan/gm');
    expect(redactedUrl('not a url s3cret')).not.toMatch(/s3cret/);
  });
});
