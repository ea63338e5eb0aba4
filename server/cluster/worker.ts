/** The worker's side of `serve --workers`: telling the primary it serves, and letting go of it at the end. */
import cluster from 'node:cluster';

const READY = 'goldmirror:worker-ready';

/** Sent once the worker listens: from then on a death is a crash to replace, not a failed start. */
export function reportReady(): void {
  if (cluster.isWorker) process.send?.({ type: READY });
}

export function isReadyMessage(message: unknown): boolean {
  return typeof message === 'object' && message !== null && (message as { type?: unknown }).type === READY;
}

/** Closes the IPC channel, which (with the metrics listener on it) would otherwise keep a finished worker alive. */
export function leavePrimary(): void {
  if (cluster.worker?.isConnected()) cluster.worker.disconnect();
}
