/** Structured JSON logs on stderr (stdout stays free for CLI output and pipes). */
import cluster from 'node:cluster';
import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

export function createLogger(level: string): Logger {
  return pino({ level, base: baseFields(), timestamp: pino.stdTimeFunctions.isoTime }, pino.destination(2));
}

/** In a `serve --workers` worker every line names the worker and its pid, so a log says which process answered. */
function baseFields(): Record<string, unknown> {
  const worker = cluster.isWorker ? cluster.worker : undefined;
  return worker ? { svc: 'goldmirror', worker: worker.id, pid: process.pid } : { svc: 'goldmirror' };
}
