/** Names for the rows a process claims in the shared database (locks, jobs), unique per claimant. */
import { randomBytes } from 'node:crypto';
import os from 'node:os';

/**
 * host/pid/random (under the 200 characters the columns hold): which machine and process holds a row,
 * readable in the database; random so that two runtimes in one process differ.
 */
export function newHolderId(): string {
  return `${os.hostname().slice(0, 120)}/${process.pid}/${randomBytes(6).toString('hex')}`;
}
