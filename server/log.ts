/** Structured JSON logs on stderr (stdout stays free for CLI output and pipes). */
import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

export function createLogger(level: string): Logger {
  return pino({ level, base: { svc: 'goldmirror' }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination(2));
}
