/**
 * The CLI's Download URLs start with the same public address as the
 * server's (MIRROR_PUBLIC_URL, else the one stored in the database), never
 * with this machine's host name; when there is none, or Macs cannot reach
 * it, the CLI says so on stderr.
 */
import type { Db } from '../db/open.js';
import { downloadUrl } from '../links.js';
import { PUBLIC_ADDRESS_MISSING, resolvePublicAddress, type PublicAddress } from '../services/settings.js';

/** Printed in place of a link while no public address is set. */
export const NOT_READY = '(not ready: no public address is set)';

/** Resolves the address and writes a note (missing) or a red warning (loopback…) to stderr. */
export async function cliPublicAddress(deps: {
  db: Db;
  config: { readonly publicUrl: string };
}): Promise<PublicAddress> {
  const address = await resolvePublicAddress(deps);
  if (address.url === null) process.stderr.write(`goldmirror: note: ${PUBLIC_ADDRESS_MISSING}\n`);
  for (const warning of address.warnings) process.stderr.write(red(`goldmirror: warning: ${warning}`) + '\n');
  return address;
}

/** The Download URL of a package, null (with the note on stderr) while no public address is set. */
export async function cliDownloadUrl(
  deps: Parameters<typeof cliPublicAddress>[0],
  blob: { sha256: string; name: string },
): Promise<string | null> {
  const base = (await cliPublicAddress(deps)).url;
  return base === null ? null : downloadUrl(base, blob.sha256, blob.name);
}

/** Red on a terminal that wants colour, plain text otherwise (pipes, logs, NO_COLOR). */
export function red(text: string): string {
  return process.stderr.isTTY && !process.env.NO_COLOR ? `\x1b[31m${text}\x1b[0m` : text;
}
