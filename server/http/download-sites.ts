/**
 * Sites on the download path: a GET of a package from a Mac in a site with
 * a healthy replica holding it is answered 302 to the same path on that
 * replica (services/routing.ts decides). Only a primary redirects: a replica
 * (MIRROR_SYNC_FROM set) never does, nor does any mirror when
 * MIRROR_REDIRECTS=off, for HEAD, the checksum line, its own link check, or
 * a request another goldmirror sent (the hop header: probes and syncs).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from '../../config/load.js';
import type { Sha256 } from '../../storage/digest.js';
import { LINK_CHECK_USER_AGENT } from '../links.js';
import type { DbDeps } from '../services/deps.js';
import { createRouter, decideRoute, HOP_HEADER, MIRROR_ID_HEADER, mirrorIdOf } from '../services/routing.js';

export interface SiteRouting {
  /**
   * Where this GET goes: the replica's URL for the request's path, or null to serve it here. Answers a
   * request from another goldmirror with this mirror's id (MIRROR_ID_HEADER) on `res`.
   */
  route(
    req: IncomingMessage,
    res: ServerResponse,
    sha256: Sha256,
  ): Promise<{ location: string; site: string; replica: string } | null>;
  /** The site of a client address by the rows last read (null outside every site, or before the first read). */
  siteOf(client: string): string | null;
}

export function createSiteRouting(
  deps: DbDeps & { config: Pick<Config, 'redirects' | 'syncFrom' | 'publicUrl'> },
  clientOf: (req: IncomingMessage) => string,
  onError: (err: unknown) => void,
): SiteRouting {
  const { config } = deps;
  const router = createRouter(deps, onError);
  const mirrorId = mirrorIdOf(deps);
  const mayRedirect = config.redirects === 'on' && config.syncFrom === '';
  return {
    async route(req, res, sha256) {
      if (req.headers[HOP_HEADER] !== undefined) {
        res.setHeader(MIRROR_ID_HEADER, await mirrorId());
        return null;
      }
      if (!mayRedirect || req.method !== 'GET' || req.headers['user-agent'] === LINK_CHECK_USER_AGENT) return null;
      if (!sameAnswerElsewhere(req)) return null;
      // Sites are an optimisation of where the bytes come from: if they cannot be read, serve here.
      const table = await router.table().catch((err: unknown) => {
        onError(err);
        return null;
      });
      if (!table) return null;
      if (table.sites.size === 0) return null;
      const decision = decideRoute(table, {
        client: clientOf(req),
        sha256,
        now: deps.clock.now(),
        ownUrl: config.publicUrl,
      });
      if (!decision.replica || !decision.site) return null;
      // The path exactly as the Mac sent it (its own percent-encoding), without any query.
      const path = (req.url ?? '').replace(/[?#].*$/, '');
      return {
        location: `${decision.replica.publicUrl}${path}`,
        site: decision.site,
        replica: decision.replica.publicUrl,
      };
    },
    siteOf(client) {
      // Keeps the rows fresh on a mirror that never routes (a replica, redirects off): the log still names sites.
      router.table().catch(onError);
      const table = router.current();
      return table?.matcher.match(client)?.value ?? null;
    },
  };
}

/**
 * Whether a replica judges this request's preconditions as this mirror would. The ETag (the digest) is the
 * same on every node, but Last-Modified is each node's own ingest time: a date in If-Unmodified-Since could
 * fail there (412), and one in If-Range would turn a resume into a whole 200, so those stay here.
 */
function sameAnswerElsewhere(req: IncomingMessage): boolean {
  if (req.headers['if-unmodified-since'] !== undefined) return false;
  const ifRange = req.headers['if-range'];
  return ifRange === undefined || (typeof ifRange === 'string' && /^\s*(W\/)?"/.test(ifRange));
}
