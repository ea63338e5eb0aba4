import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AppError, errorBody, errorRegistry, isError, toAppError, type ErrorCode } from '../../server/errors.js';

const codes = Object.keys(errorRegistry) as ErrorCode[];

describe('error registry', () => {
  it('gives every code an HTTP status, a CLI exit code and a default message', () => {
    expect(codes.length).toBeGreaterThan(0);
    for (const code of codes) {
      const d = errorRegistry[code];
      expect(code, code).toMatch(/^[A-Z][A-Z_]*[A-Z]$/);
      expect(Number.isInteger(d.status) && d.status >= 400 && d.status <= 599, `${code} status ${d.status}`).toBe(true);
      expect([1, 2], `${code} exit code`).toContain(d.exitCode);
      expect(d.message.trim().length, `${code} message`).toBeGreaterThan(0);
      // A code the API never shows is answered as INTERNAL, so its own status must say so too.
      if (!d.expose) expect(d.status, code).toBe(500);
    }
  });

  it('keeps the exit codes the CLI documents: 2 for usage and configuration, 1 for everything else', () => {
    const two = codes.filter((c) => errorRegistry[c].exitCode === 2).sort();
    expect(two).toEqual(['CONFIG_INVALID', 'USAGE', 'VALIDATION_FAILED']);
    expect(new AppError('DIGEST_MISMATCH', 'x').exitCode).toBe(1);
    expect(new AppError('USAGE', 'x').exitCode).toBe(2);
  });

  it('lists only codes that some source file uses', async () => {
    const roots = ['server', 'storage', 'config', 'web'].map((d) => path.join(import.meta.dirname, '../..', d));
    const texts: string[] = [];
    for (const root of roots) {
      for (const entry of await fs.readdir(root, { recursive: true, withFileTypes: true })) {
        const file = path.join(entry.parentPath, entry.name);
        if (entry.isFile() && /\.tsx?$/.test(entry.name) && !file.endsWith(path.join('server', 'errors.ts'))) {
          texts.push(await fs.readFile(file, 'utf8'));
        }
      }
    }
    const unused = codes.filter((code) => code !== 'INTERNAL' && !texts.some((t) => t.includes(`'${code}'`)));
    expect(unused).toEqual([]);
  });
});

describe('AppError and isError', () => {
  it('uses the default message when none is given, and the status of its code', () => {
    const err = new AppError('BLOB_UNKNOWN');
    expect(err.message).toBe(errorRegistry.BLOB_UNKNOWN.message);
    expect(err.status).toBe(404);
    expect(err).toBeInstanceOf(Error);
  });

  it('narrows by code, including the details of codes whose details have a shape', () => {
    const err: unknown = new AppError('CSV_SYNTAX', 'a quoted field is never closed', { line: 7, tooLarge: false });
    expect(isError(err)).toBe(true);
    expect(isError(err, 'CSV_INVALID')).toBe(false);
    if (!isError(err, 'CSV_SYNTAX')) throw new Error('isError did not recognise its own code');
    // Compiles only because isError narrowed the details to { line: number; tooLarge: boolean }.
    const line: number = err.details.line;
    expect(line).toBe(7);
    expect(err.code).toBe('CSV_SYNTAX');
  });

  it('does not recognise look-alikes: plain errors or objects that merely carry a code', () => {
    expect(isError(new Error('x'))).toBe(false);
    expect(isError({ code: 'DIGEST_MISMATCH', message: 'x' }, 'DIGEST_MISMATCH')).toBe(false);
    expect(isError(Object.assign(new Error('x'), { code: 'DATABASE_UNAVAILABLE' }))).toBe(false);
    expect(isError(null)).toBe(false);
  });
});

describe('toAppError (what clients see)', () => {
  it('turns an unknown error into a bare INTERNAL 500 that keeps the original only as its cause', () => {
    const secret = new Error('ENOENT: /var/lib/goldmirror/secret.db');
    const err = toAppError(secret);
    expect(err.code).toBe('INTERNAL');
    expect(err.status).toBe(500);
    expect(err.message).toBe('internal server error');
    expect(err.cause).toBe(secret);
    expect(JSON.stringify(errorBody(err))).toBe('{"error":{"code":"INTERNAL","message":"internal server error"}}');
    expect(toAppError('a thrown string').code).toBe('INTERNAL');
  });

  it('hides codes meant for the process (startup, configuration) the same way', () => {
    const startup = new AppError('STARTUP_FAILED', 'cannot read the TLS key /etc/goldmirror/key.pem (EACCES)');
    const err = toAppError(startup);
    expect(errorBody(err)).toEqual({ error: { code: 'INTERNAL', message: 'internal server error' } });
    expect(err.cause).toBe(startup);
    const config = new AppError('CONFIG_INVALID', 'invalid configuration', { problems: ['port: too big'] });
    expect(errorBody(toAppError(config))).toEqual({ error: { code: 'INTERNAL', message: 'internal server error' } });
  });

  it('passes exposed codes through unchanged, details in the body, and does not wrap a bare INTERNAL twice', () => {
    const mismatch = new AppError('DIGEST_MISMATCH', 'content hashes to b, expected a', { expected: 'a', actual: 'b' });
    expect(toAppError(mismatch)).toBe(mismatch);
    expect(errorBody(mismatch)).toEqual({
      error: { code: 'DIGEST_MISMATCH', message: 'content hashes to b, expected a', expected: 'a', actual: 'b' },
    });
    const bare = toAppError(new Error('x'));
    expect(toAppError(bare)).toBe(bare);
  });
});
