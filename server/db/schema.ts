/**
 * Table types for kysely. Timestamps are integer milliseconds since the
 * epoch (portable: INTEGER in SQLite, BIGINT in PostgreSQL).
 */
import type { Generated, Insertable, Selectable, Updateable } from 'kysely';

export type BlobState = 'ok' | 'corrupt' | 'missing';
/** The architecture a package was stored for (migration 0008); `unknown` when nobody said. */
export type BlobArch = 'arm64' | 'x86_64' | 'unknown';

export interface BlobsTable {
  sha256: string;
  size: number;
  /** File name the package last arrived with, cleaned to a safe path segment; used in generated links. */
  name: string;
  created_at: number;
  state: BlobState;
  verified_at: number | null;
  /** Why the state is not ok (what the last check found). */
  state_detail: Generated<string | null>;
  /** Last time this content was ingested (again); GC's grace period counts from here. */
  ingested_at: Generated<number | null>;
  arch: Generated<BlobArch>;
  /** A golden-image package (links end in .pvmp) or a Parallels Desktop update file (.dmg); migration 0012. */
  kind: Generated<BlobKind>;
}

export type BlobKind = 'package' | 'update';

export interface BlobActivityTable {
  sha256: string;
  last_active_at: number;
}

export interface DownloadStatsTable {
  sha256: string;
  downloads: Generated<number>;
  bytes_sent: Generated<number>;
  last_download_at: number | null;
}

/** 0/1: portable booleans. */
export type Flag = 0 | 1;

export interface ImagesTable {
  id: Generated<number>;
  name: string;
  description: string;
  arm64_enabled: Flag;
  arm64_sha256: string | null;
  x86_64_enabled: Flag;
  x86_64_sha256: string | null;
  created_at: number;
  updated_at: number;
}

export interface GroupsTable {
  id: Generated<number>;
  name: string;
  license_key: string | null;
  is_primary: Flag;
  image_id: number | null;
  created_at: number;
  updated_at: number;
}

export interface UsersTable {
  id: Generated<number>;
  username: string;
  password_hash: string;
  created_at: number;
  password_changed_at: number;
}

export interface SessionsTable {
  token_hash: string;
  user_id: number;
  csrf_token: string;
  created_at: number;
  expires_at: number;
}

export interface ApiTokensTable {
  id: Generated<number>;
  name: string;
  token_hash: string;
  /** admin | read | sync (see TOKEN_SCOPES); a CHECK keeps it so. */
  scope: 'admin' | 'read' | 'sync';
  created_at: number;
  last_used_at: number | null;
}

export interface LoginFailuresTable {
  key: string;
  failures: number;
  first_failure_at: number;
  locked_until: number;
}

/** Who this mirror is (migration 0011): one row, key 'self', made by the first process that needs it. */
export interface MirrorIdentityTable {
  key: 'self';
  id: string;
  created_at: number;
}

/** A site (migration 0011): a name and its client networks, a JSON array of CIDR blocks. */
export interface SitesTable {
  name: string;
  networks: string;
  /** 0 when an admin switched the site's redirects off. */
  redirects: Generated<Flag>;
  created_at: number;
  updated_at: number;
}

export type ReplicaCheckState = 'pending' | 'up' | 'down';

/** A replica as its last heartbeat described it, and what the primary's last probe of it found. */
export interface ReplicasTable {
  id: Generated<number>;
  public_url: string;
  site: string;
  version: string;
  /** The replica's own mirror id: a probe answered with this mirror's id means the URL leads back here. */
  mirror_id: string;
  token_name: string;
  enabled: Generated<Flag>;
  weight: Generated<number>;
  heartbeat_ms: number;
  first_seen_at: number;
  last_heartbeat_at: number;
  last_sync_at: number | null;
  check_state: Generated<ReplicaCheckState>;
  check_detail: string | null;
  checked_at: number | null;
  checks: Generated<number>;
}

/** A package a replica reports as verified; `bad` when the primary's probe read other bytes from it. */
export interface ReplicaBlobsTable {
  replica_id: number;
  sha256: string;
  bad: Generated<Flag>;
}

/** A lease several processes compete for (migration 0009); times in epoch ms. */
export interface LeasesTable {
  name: string;
  /** Who holds it: unique per process start. */
  holder: string;
  host: string;
  pid: number;
  /** The node:cluster worker id, or null outside a cluster. */
  worker: number | null;
  /** The address the holder listens on (host:port). */
  listen: string | null;
  acquired_at: number;
  renewed_at: number;
  expires_at: number;
}

export interface AuditLogTable {
  id: Generated<number>;
  at: number;
  actor: string;
  action: string;
  target: string;
  /** JSON text. */
  details: string;
}

/** Settings changed at run time (key → text value). */
export interface SettingsTable {
  key: string;
  value: string;
  updated_at: number;
  updated_by: string;
}

/** Per image, the portal values last confirmed as entered in the Management Portal. */
export interface PortalConfirmedTable {
  image_id: number;
  /** The public address the confirmed URLs were built from; null while not known. */
  public_url: string | null;
  arm64_enabled: Flag;
  arm64_sha256: string | null;
  x86_64_enabled: Flag;
  x86_64_sha256: string | null;
  confirmed_at: number;
  confirmed_by: string;
  /** When the image's values first differed from these; null when they do not. */
  changed_at: Generated<number | null>;
}

/** Packages an image has used: when the last image stopped (retired) and the portal stopped (released). */
export interface BlobUsageTable {
  sha256: string;
  retired_at: Generated<number | null>;
  released_at: Generated<number | null>;
}

/** The last link check of an image, as JSON. */
export interface LinkChecksTable {
  image_id: number;
  checked_at: number;
  report: string;
}

/** One download body served (see migration 0007 and services/download-log.ts). */
export interface DownloadLogTable {
  id: Generated<number>;
  started_at: number;
  finished_at: number;
  duration_ms: number;
  sha256: string;
  image_id: number | null;
  image_name: string | null;
  arch: string | null;
  client: string;
  user_agent: string;
  status: number;
  first_byte: number | null;
  bytes_planned: number;
  bytes_sent: number;
  size: number;
  result: 'complete' | 'resumed' | 'aborted';
  covers_end: Flag;
  /** The client's site (migration 0011); null when it is in none. */
  site: Generated<string | null>;
  /** The replica the client was sent to; null when this mirror served the bytes. */
  served_by: Generated<string | null>;
}

/** A tus upload locked by one request of one process (migration 0010); past expires_at its holder is dead. */
export interface UploadLocksTable {
  upload_id: string;
  holder: string;
  expires_at: number;
  /** Another request waits for the lock: the holder ends its request soon. */
  release_requested: Generated<Flag>;
}

export type UploadFinishState = 'finishing' | 'stored' | 'failed';

/** Storing a complete upload: claimed while it runs, then its outcome until expires_at. */
export interface UploadFinishesTable {
  upload_id: string;
  state: UploadFinishState;
  holder: string;
  expires_at: number;
  sha256: Generated<string | null>;
  size: Generated<number | null>;
  url: Generated<string | null>;
  error_code: Generated<string | null>;
  error_message: Generated<string | null>;
  updated_at: number;
}

export type TransferJobState = 'queued' | 'running' | 'done' | 'failed' | 'cancelled';

/** A pull from a URL, run by `holder`, which writes progress and heartbeat (updated_at) while it runs. */
export interface TransferJobsTable {
  id: string;
  kind: Generated<'fetch'>;
  source_url: string;
  state: TransferJobState;
  bytes_done: Generated<number>;
  total_bytes: Generated<number | null>;
  sha256: Generated<string | null>;
  error_code: Generated<string | null>;
  error_message: Generated<string | null>;
  cancel_requested: Generated<Flag>;
  holder: string;
  created_at: number;
  updated_at: number;
  finished_at: Generated<number | null>;
}

export type UpdateFetchState = 'waiting' | 'stored' | 'failed' | 'collected';

/** A Parallels Desktop version (migration 0012): its feed entry, its file in the blob store, and whether it is published. */
export interface PdUpdatesTable {
  version: string;
  major: number;
  minor: number;
  sub_minor: number;
  build: number;
  origin: Generated<'upstream' | 'manual'>;
  feed_url: string | null;
  file_url: string | null;
  file_size_text: string | null;
  /** JSON of the Version element (feed-xml.ts XmlElement). */
  element: string;
  /** JSON of the product frame (feed.ts ProductFrame). */
  product: string;
  sha256: string | null;
  size: number | null;
  validator: string | null;
  fetch_state: Generated<UpdateFetchState>;
  fetch_error: string | null;
  fetched_at: number | null;
  published: Generated<Flag>;
  published_at: number | null;
  unpublished_at: number | null;
  listed: Generated<Flag>;
  /** JSON array of remarks. */
  notes: string | null;
  alert: string | null;
  alert_at: number | null;
  /** The other bytes found behind the URL, stored for the admin to take or dismiss (null: none were stored). */
  alert_sha256: Generated<string | null>;
  created_at: number;
  updated_at: number;
}

/** How the last read of one upstream feed went. */
export interface PdUpdateFeedsTable {
  url: string;
  checked_at: number | null;
  ok_at: number | null;
  error: string | null;
  /** JSON array: versions the last good read left out, and why. */
  skipped: string | null;
}

export interface Database {
  blobs: BlobsTable;
  images: ImagesTable;
  groups: GroupsTable;
  users: UsersTable;
  sessions: SessionsTable;
  api_tokens: ApiTokensTable;
  login_failures: LoginFailuresTable;
  audit_log: AuditLogTable;
  blob_activity: BlobActivityTable;
  download_stats: DownloadStatsTable;
  settings: SettingsTable;
  portal_confirmed: PortalConfirmedTable;
  blob_usage: BlobUsageTable;
  link_checks: LinkChecksTable;
  download_log: DownloadLogTable;
  upload_locks: UploadLocksTable;
  upload_finishes: UploadFinishesTable;
  transfer_jobs: TransferJobsTable;
  leases: LeasesTable;
  mirror_identity: MirrorIdentityTable;
  sites: SitesTable;
  replicas: ReplicasTable;
  replica_blobs: ReplicaBlobsTable;
  pd_updates: PdUpdatesTable;
  pd_update_feeds: PdUpdateFeedsTable;
}

export type BlobRow = Selectable<BlobsTable>;
export type NewBlobRow = Insertable<BlobsTable>;
export type BlobUpdate = Updateable<BlobsTable>;
export type ImageRow = Selectable<ImagesTable>;
export type GroupRow = Selectable<GroupsTable>;
export type UserRow = Selectable<UsersTable>;
export type AuditRow = Selectable<AuditLogTable>;
export type PortalConfirmedRow = Selectable<PortalConfirmedTable>;
export type DownloadLogRow = Selectable<DownloadLogTable>;
export type PdUpdateRow = Selectable<PdUpdatesTable>;
export type PdUpdateFeedRow = Selectable<PdUpdateFeedsTable>;
export type NewDownloadLogRow = Insertable<DownloadLogTable>;
