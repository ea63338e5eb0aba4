/**
 * The downloads streaming right now: what the connection caps count
 * (MIRROR_MAX_DOWNLOADS in total, MIRROR_MAX_DOWNLOADS_PER_CLIENT per client
 * address), and, per digest, how to cut each one off when its blob fails an
 * integrity check while it streams.
 */

export type DownloadRefusal = { scope: 'total' | 'client'; limit: number };

export interface ActiveDownload {
  /** Call once when the response is over (complete or not); frees its slot. */
  end(): void;
  /**
   * Records that this download was cut off by other means (it noticed its
   * blob failing a check itself); false if cut() got to it first. Either way
   * it is counted once.
   */
  markCut(): boolean;
}

export interface DownloadRegistry {
  /**
   * Registers a body about to stream. `counted` bodies (long downloads) take a
   * slot under the caps; when none is free nothing is registered and the
   * refusal says which cap was hit.
   */
  begin(entry: { sha256: string; client: string; counted: boolean; cut: () => void }): ActiveDownload | DownloadRefusal;
  /** Cuts every download of `sha256` that is streaming; returns how many. */
  cut(sha256: string): number;
  /** Downloads holding a slot. */
  readonly counted: number;
}

export interface DownloadCaps {
  /** 0 = no cap. */
  maxDownloads: number;
  /** 0 = no cap. */
  maxDownloadsPerClient: number;
}

export function isRefusal(value: ActiveDownload | DownloadRefusal): value is DownloadRefusal {
  return 'scope' in value;
}

export function createDownloadRegistry(
  caps: DownloadCaps,
  onCountChange?: (counted: number) => void,
): DownloadRegistry {
  const byDigest = new Map<string, Set<{ cut: () => void; done: boolean }>>();
  const perClient = new Map<string, number>();
  let counted = 0;

  return {
    begin({ sha256, client, counted: takesSlot, cut }) {
      if (takesSlot) {
        if (caps.maxDownloads > 0 && counted >= caps.maxDownloads) return { scope: 'total', limit: caps.maxDownloads };
        const mine = perClient.get(client) ?? 0;
        if (caps.maxDownloadsPerClient > 0 && mine >= caps.maxDownloadsPerClient)
          return { scope: 'client', limit: caps.maxDownloadsPerClient };
        perClient.set(client, mine + 1);
        counted += 1;
        onCountChange?.(counted);
      }
      let cuts = byDigest.get(sha256);
      if (!cuts) byDigest.set(sha256, (cuts = new Set()));
      const entry = { cut, done: false };
      cuts.add(entry);
      let ended = false;
      return {
        end() {
          if (ended) return;
          ended = true;
          const set = byDigest.get(sha256);
          if (set?.delete(entry) && set.size === 0) byDigest.delete(sha256);
          if (!takesSlot) return;
          const left = (perClient.get(client) ?? 1) - 1;
          if (left > 0) perClient.set(client, left);
          else perClient.delete(client);
          counted -= 1;
          onCountChange?.(counted);
        },
        markCut() {
          if (entry.done) return false;
          entry.done = true;
          return true;
        },
      };
    },
    cut(sha256) {
      const cuts = byDigest.get(sha256);
      if (!cuts) return 0;
      // Each download is cut once, even if the verdict is reported twice before it has ended.
      let count = 0;
      for (const entry of cuts) {
        if (entry.done) continue;
        entry.done = true;
        entry.cut();
        count += 1;
      }
      return count;
    },
    get counted() {
      return counted;
    },
  };
}
