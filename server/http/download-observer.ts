/**
 * Turns download events into metrics, transfer heartbeats, download counts,
 * the download log (who downloaded what, batched by the activity tracker)
 * and log lines that name the golden image and architecture. The digest →
 * (image, arch) map is cached briefly so the hot path never waits on the database.
 */
import { clientAddress } from './client-address.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { LINK_CHECK_USER_AGENT } from '../links.js';
import type { ActivityTracker } from '../services/activity.js';
import type { ServiceDeps } from '../services/deps.js';
import { downloadLabels, type DownloadLabels } from '../services/download-labels.js';
import type { DownloadFinish, DownloadRedirect, DownloadStart } from './downloads.js';

const LABEL_TTL_MS = 10_000;
/** User agents longer than this are cut (the column holds 300). */
const MAX_USER_AGENT_CHARS = 300;

type Labels = DownloadLabels;

const NO_LABELS: Labels = { image: '', arch: '', imageId: null };

export function createDownloadObserver(
  deps: Pick<ServiceDeps, 'db' | 'log' | 'metrics' | 'clock'> & {
    activity: ActivityTracker;
    /** Who a request comes from (server/http/client-address.ts; trusted proxies included). */
    clientOf?: (req: IncomingMessage) => string;
    /** The site of a client address (sites, download-sites.ts); null outside every site. */
    siteOf?: (client: string) => string | null;
  },
): {
  observe: (start: DownloadStart) => DownloadFinish;
  redirected: (redirect: DownloadRedirect) => void;
  labelsReady: () => Promise<void>;
} {
  const { log, metrics, activity, clock } = deps;
  const clientOf = deps.clientOf ?? clientAddress;
  const siteOf = deps.siteOf ?? (() => null);
  let labels = new Map<string, Labels>();
  let loadedAt = -Infinity;
  let loading: Promise<void> | null = null;

  const refresh = (): void => {
    if (loading || clock.now() - loadedAt < LABEL_TTL_MS) return;
    loading = downloadLabels(deps)
      .then((next) => {
        labels = next;
        loadedAt = clock.now();
      })
      .catch((err: unknown) => log.warn({ err }, 'could not load image names for download metrics'))
      .finally(() => {
        loading = null;
      });
  };

  const observe = function observeDownload(start: DownloadStart): DownloadFinish {
    refresh();
    const l = labels.get(start.sha256) ?? NO_LABELS;
    const metricLabels = { image: l.image, arch: l.arch };
    metrics.downloadsStarted.inc(metricLabels);
    metrics.activeDownloads.inc();
    const endActivity = activity.begin(start.sha256);
    const startedAt = performance.now();
    // Who and where, worked out once per body (the log and the site counter both need them).
    const client = start.request ? clientOf(start.request) : '';
    const site = start.request ? siteOf(client) : null;
    const logged =
      start.request && start.response
        ? logEntry(activity, start, l, start.request, start.response, { client, site }, clock.now())
        : null;
    if (start.request && start.request.headers['user-agent'] !== LINK_CHECK_USER_AGENT)
      metrics.siteDownloads.inc({ site: site ?? '', served_by: 'local' });
    return ({ bytes, complete }) => {
      endActivity();
      metrics.activeDownloads.dec();
      metrics.downloadBytes.inc(metricLabels, bytes);
      if (complete) metrics.downloadsCompleted.inc(metricLabels);
      else metrics.downloadsAborted.inc(metricLabels);
      if (complete && start.coversEnd) activity.downloaded(start.sha256, bytes);
      logged?.finish({ bytesSent: bytes, complete, coversEnd: start.coversEnd });
      const fields = {
        sha256: start.sha256,
        image: l.image,
        arch: l.arch,
        status: start.status,
        bytes,
        durationMs: Math.round(performance.now() - startedAt),
      };
      if (!complete) log.info(fields, 'download aborted');
      else if (start.coversEnd) log.info(fields, 'download finished');
      else log.debug(fields, 'range served');
    };
  };
  /**
   * A GET handed to the object store: counted, logged with status 302 and no
   * bytes sent by us, and, when it asks for the last byte, counted as a
   * download (the last goldmirror can know of it), which keeps a retired
   * package from GC for the grace period as a streamed download would.
   */
  const redirected = function observeRedirect(redirect: DownloadRedirect): void {
    refresh();
    const l = labels.get(redirect.sha256) ?? NO_LABELS;
    if (redirect.servedBy)
      metrics.siteDownloads.inc({ site: redirect.servedBy.site, served_by: redirect.servedBy.replica });
    else metrics.downloadsRedirected.inc({ image: l.image, arch: l.arch });
    activity.begin(redirect.sha256)();
    if (redirect.coversEnd) activity.downloaded(redirect.sha256, 0);
    const userAgent = headerText(redirect.request.headers['user-agent']);
    if (userAgent !== LINK_CHECK_USER_AGENT) {
      activity
        .downloadStarted({
          startedAt: clock.now(),
          sha256: redirect.sha256,
          imageId: l.imageId,
          imageName: l.image || null,
          arch: l.arch || null,
          client: clientOf(redirect.request),
          userAgent: userAgent.slice(0, MAX_USER_AGENT_CHARS),
          site: redirect.servedBy?.site ?? siteOf(clientOf(redirect.request)),
          servedBy: redirect.servedBy?.replica ?? null,
          status: 302,
          firstByte: redirect.firstByte,
          bytesPlanned: redirect.bytes,
          size: redirect.size,
          progress: () => 0,
        })
        .finish({ bytesSent: 0, complete: true, coversEnd: redirect.coversEnd });
    }
    const fields = {
      sha256: redirect.sha256,
      image: l.image,
      arch: l.arch,
      firstByte: redirect.firstByte,
      bytes: redirect.bytes,
    };
    const where = redirect.servedBy ? `replica ${redirect.servedBy.replica}` : 'the object storage';
    if (redirect.coversEnd) log.info(fields, `download redirected to ${where}`);
    else log.debug(fields, `range redirected to ${where}`);
  };
  return {
    observe,
    redirected,
    /** Resolves at once while the names are fresh; otherwise after they are reloaded (once per TTL). */
    labelsReady() {
      refresh();
      return loading ?? Promise.resolve();
    },
  };
}

/** Shows the download as in progress and logs it when it ends; goldmirror's own link checks are not logged. */
function logEntry(
  activity: ActivityTracker,
  start: DownloadStart,
  l: Labels,
  req: IncomingMessage,
  res: ServerResponse,
  who: { client: string; site: string | null },
  startedAt: number,
) {
  const userAgent = headerText(req.headers['user-agent']);
  if (userAgent === LINK_CHECK_USER_AGENT) return null;
  const range =
    start.status === 206 ? /^bytes (\d+)-\d+\/(\d+)$/.exec(String(res.getHeader('content-range') ?? '')) : null;
  const size = start.size ?? (range ? Number(range[2]) : start.bytes);
  // Bytes on the socket before this body (keep-alive): progress counts from here.
  const socket = res.socket;
  const before = socket?.bytesWritten ?? 0;
  return activity.downloadStarted({
    startedAt,
    sha256: start.sha256,
    imageId: l.imageId,
    imageName: l.image || null,
    arch: l.arch || null,
    client: who.client,
    userAgent: userAgent.slice(0, MAX_USER_AGENT_CHARS),
    site: who.site,
    servedBy: null,
    status: start.status,
    // A multipart answer (several ranges) has no single first byte.
    firstByte: start.status === 200 ? 0 : range ? Number(range[1]) : null,
    bytesPlanned: start.bytes,
    size,
    progress: () => (socket ? socket.bytesWritten - before : 0),
  });
}

function headerText(value: string | string[] | undefined): string {
  const text = Array.isArray(value) ? value.join(', ') : (value ?? '');
  // eslint-disable-next-line no-control-regex -- control characters never belong in a stored user agent
  return text.replace(/[\u0000-\u001f\u007f]/g, ' ').trim();
}
