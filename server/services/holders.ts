/** Names for the rows a process claims in the shared database (locks, jobs), unique per claimant. */
import { randomBytes } from 'node:crypto';
import os from 'node:os';

/** host/pid/random: which machine and process holds a row, readable in the database; random so that two runtimes of one process differ. */
export function newHolderId(): string {
  return `${os.hostname()}/${process.pid}/${randomBytes(6).toString('hex')}`;
}
