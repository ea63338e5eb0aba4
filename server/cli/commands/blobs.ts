import fs from 'node:fs/promises';
import { parseChecksumText, parseSha256, type Sha256 } from '../../../storage/digest.js';
import { AppError, isError } from '../../errors.js';
import { downloadUrl } from '../../links.js';
import { assertPackageFileName, listBlobRecords, parseBlobArch } from '../../services/blobs.js';
import { ingestFile } from '../../services/ingest.js';
import { JSON_FLAG, STRING, defineCommand } from '../context.js';
import { humanBytes } from '../../format.js';
import { printJson, printLine, table } from '../output.js';
import { cliDownloadUrl, cliPublicAddress, NOT_READY } from '../public-address.js';

export const importCommand = defineCommand({
  summary: 'store a .pvmp package and print its SHA-256 and download link',
  usage: 'goldmirror import FILE.pvmp [--arch arm64|x86_64|unknown] [--sha256 HEX | --checksum-file TXT] [--json]',
  options: { sha256: STRING, 'checksum-file': STRING, arch: STRING, ...JSON_FLAG },
  arity: [1, 'import takes exactly one FILE'],
  async run(ctx, { values, positionals }) {
    const arch = parseBlobArch(values.arch, '--arch');
    if (values.sha256 !== undefined && values['checksum-file'] !== undefined) {
      throw new AppError('USAGE', 'give either --sha256 or --checksum-file, not both');
    }
    const file = positionals[0]!;
    let expected: Sha256 | undefined;
    if (values.sha256 !== undefined) expected = parseSha256(values.sha256, '--sha256');
    if (values['checksum-file'] !== undefined) {
      const checksumFile = values['checksum-file'];
      const text = await readSmallText(checksumFile);
      expected = parseChecksumText(text, `checksum file ${checksumFile}`);
    }
    await assertReadableFile(file);
    try {
      assertPackageFileName(file);
    } catch (err) {
      throw new AppError('USAGE', (err as Error).message);
    }

    await ctx.withRuntime(async (runtime) => {
      const { blob, created } = await ingestFile(runtime.ingestDeps, file, { expectedSha256: expected, arch }).catch(
        (err: unknown) => {
          if (!isError(err, 'DIGEST_MISMATCH')) throw err;
          throw new AppError(
            'DIGEST_MISMATCH',
            `checksum mismatch for ${file}: expected sha256 ${String(err.details.expected)}, ` +
              `but the file hashes to ${String(err.details.actual)}; nothing was stored`,
            { ...err.details },
            { cause: err },
          );
        },
      );
      const url = await cliDownloadUrl(runtime, blob);
      if (values.json) {
        const verified = expected !== undefined;
        return printJson({
          sha256: blob.sha256,
          size: blob.size,
          url,
          name: blob.name,
          arch: blob.arch,
          created,
          verified,
        });
      }
      printStored(file, blob, created);
      printLine(
        `arch:   ${blob.arch}${blob.arch === 'unknown' ? ' (give --arch arm64 or --arch x86_64 to record it)' : ''}`,
      );
      printLine(`url:    ${url ?? NOT_READY}`);
    });
  },
});

export const listCommand = defineCommand({
  summary: 'list stored packages',
  usage: 'goldmirror list [--json]',
  options: JSON_FLAG,
  arity: [0, 'list takes no arguments'],
  async run(ctx, { values }) {
    return ctx.withRuntime(async (runtime) => {
      // The table has no links; only --json prints them (and the note about the address).
      const base = values.json ? (await cliPublicAddress(runtime)).url : null;
      const blobs = (await listBlobRecords(runtime)).map((b) => ({
        sha256: b.sha256,
        size: b.size,
        name: b.name,
        state: b.state,
        arch: b.arch,
        createdAt: new Date(b.created_at).toISOString(),
        url: base === null ? null : downloadUrl(base, b.sha256, b.name),
      }));
      if (values.json) return printJson(blobs);
      if (blobs.length === 0) return printLine('no packages stored yet; add one with: goldmirror import FILE.pvmp');
      printLine(
        table([
          ['SHA256', 'SIZE', 'STATE', 'ARCH', 'STORED', 'NAME'],
          ...blobs.map((b) => [
            b.sha256,
            humanBytes(b.size),
            b.state,
            b.arch,
            b.createdAt.slice(0, 19).replace('T', ' '),
            b.name,
          ]),
        ]),
      );
    });
  },
});

/** The first lines import and fetch print about the package they stored. */
export function printStored(source: string, blob: { sha256: string; size: number }, created: boolean): void {
  printLine(`${created ? 'stored' : 'already stored'}: ${source}`);
  printLine(`sha256: ${blob.sha256}`);
  printLine(`size:   ${blob.size} bytes (${humanBytes(blob.size)})`);
}

/** Checksum files are a line of text; anything large is not one. */
async function readSmallText(file: string): Promise<string> {
  let handle;
  try {
    handle = await fs.open(file, 'r');
  } catch (err) {
    throw new AppError('FILE_UNREADABLE', `cannot read checksum file ${file}: ${describeErrno(err)}`);
  }
  try {
    const buffer = Buffer.alloc(64 * 1024);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    return buffer.subarray(0, bytesRead).toString('utf8');
  } catch (err) {
    throw new AppError('FILE_UNREADABLE', `cannot read checksum file ${file}: ${describeErrno(err)}`);
  } finally {
    await handle.close();
  }
}

async function assertReadableFile(file: string): Promise<void> {
  try {
    const st = await fs.stat(file);
    if (!st.isFile()) throw new AppError('FILE_UNREADABLE', `${file} is not a regular file`);
    await fs.access(file, fs.constants.R_OK);
  } catch (err) {
    if (isError(err, 'FILE_UNREADABLE')) throw err;
    throw new AppError('FILE_UNREADABLE', `cannot read ${file}: ${describeErrno(err)}`);
  }
}

export function describeErrno(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory';
  return code ?? (err as Error).message;
}
