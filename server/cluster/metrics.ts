/**
 * /metrics of `serve --workers N`: the worker that receives the scrape asks
 * the primary over IPC, and the primary gathers every worker's registry with
 * prom-client's AggregatorRegistry (counters and histograms summed, gauges by
 * their `aggregator` rule) and answers the text.
 */
import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';
import { AppError } from '../errors.js';

const SCRAPE_REQUEST = 'goldmirror:scrape-request';
const SCRAPE_REPLY = 'goldmirror:scrape-reply';
/** Longer than prom-client's own 5 s gathering timeout, so the primary's error arrives first. */
const REPLY_TIMEOUT_MS = 10_000;

interface ScrapeRequest {
  type: typeof SCRAPE_REQUEST;
  id: number;
}

interface ScrapeReply {
  type: typeof SCRAPE_REPLY;
  id: number;
  text?: string;
  error?: string;
}

function isMessage<T extends { type: string }>(message: unknown, type: T['type']): message is T {
  return typeof message === 'object' && message !== null && (message as { type?: unknown }).type === type;
}

interface Pending {
  resolve(text: string): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

const pending = new Map<number, Pending>();
let nextRequestId = 0;
let replyListenerAdded = false;

/**
 * In a worker: lets the primary gather `registry`, and returns the scrape of
 * the whole cluster (what this worker's /metrics answers).
 */
export function clusterScrape(registry: Registry): () => Promise<string> {
  // Constructing one installs prom-client's answer to the primary's gathering in this worker.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([registry]);
  if (!replyListenerAdded) {
    replyListenerAdded = true;
    process.on('message', (message: unknown) => {
      if (!isMessage<ScrapeReply>(message, SCRAPE_REPLY)) return;
      const waiting = pending.get(message.id);
      if (!waiting) return;
      pending.delete(message.id);
      clearTimeout(waiting.timer);
      if (message.text !== undefined) waiting.resolve(message.text);
      else waiting.reject(unavailable(message.error ?? 'no answer'));
    });
  }
  return () =>
    new Promise<string>((resolve, reject) => {
      const id = nextRequestId++;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(unavailable('the primary process did not answer'));
      }, REPLY_TIMEOUT_MS);
      pending.set(id, { resolve, reject, timer });
      const request: ScrapeRequest = { type: SCRAPE_REQUEST, id };
      process.send?.(request, undefined, undefined, (err: Error | null) => {
        if (!err) return;
        pending.delete(id);
        clearTimeout(timer);
        reject(unavailable(err.message));
      });
    });
}

/** In the primary: answers every worker's scrape request with the sum over all workers. */
export function answerClusterScrapes(): void {
  const aggregator = new AggregatorRegistry();
  cluster.on('message', (worker: Worker, message: unknown) => {
    if (!isMessage<ScrapeRequest>(message, SCRAPE_REQUEST)) return;
    const reply = (fields: Pick<ScrapeReply, 'text' | 'error'>): void => {
      // The asking worker may have died meanwhile: nobody is left to answer.
      if (worker.isConnected()) worker.send({ type: SCRAPE_REPLY, id: message.id, ...fields } satisfies ScrapeReply);
    };
    aggregator.clusterMetrics().then(
      (text) => reply({ text }),
      (err: unknown) => reply({ error: err instanceof Error ? err.message : String(err) }),
    );
  });
}

function unavailable(reason: string): AppError {
  return new AppError('METRICS_UNAVAILABLE', `could not gather the metrics of every worker: ${reason}`);
}
