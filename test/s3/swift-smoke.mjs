// Checks every S3 call goldmirror uses against a running S3 endpoint (made for test/s3/swift.sh's Swift).
// Run: eval "$(bash test/s3/swift.sh start /tmp/gm-swift)"; export MIRROR_TEST_S3_{ENDPOINT,ACCESS_KEY_ID,
// SECRET_ACCESS_KEY,REGION}; node test/s3/swift-smoke.mjs
// Prints "ok <call>" or "FAIL <call>: <error>" per call on stdout and what it saw (ETags, error names) as
// "note" lines on stderr; exits 1 if any call failed.
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';

const env = (name) => {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is not set (see test/s3/swift.sh start)`);
    process.exit(2);
  }
  return value;
};

const s3 = new S3Client({
  endpoint: env('MIRROR_TEST_S3_ENDPOINT'),
  region: env('MIRROR_TEST_S3_REGION'),
  credentials: {
    accessKeyId: env('MIRROR_TEST_S3_ACCESS_KEY_ID'),
    secretAccessKey: env('MIRROR_TEST_S3_SECRET_ACCESS_KEY'),
  },
  forcePathStyle: true,
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED',
  maxAttempts: 1,
  requestHandler: { connectionTimeout: 5_000, requestTimeout: 60_000 },
});

const MiB = 1 << 20;
const Bucket = `gm-smoke-${randomBytes(4).toString('hex')}`;
const failures = [];

/** Deterministic bytes, the same scheme as test/helpers/env.ts testBytes. */
function testBytes(size, seed) {
  const key = createHash('sha256').update(seed).digest();
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(size));
}

const md5 = (bytes) => createHash('md5').update(bytes).digest('hex');

function note(text) {
  console.error(`note ${text}`);
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

function sameBytes(actual, expected, what) {
  check(
    Buffer.compare(Buffer.from(actual), expected) === 0,
    `${what}: got ${actual.length} bytes (md5 ${md5(actual)}), want ${expected.length} (md5 ${md5(expected)})`,
  );
}

function describe(error) {
  const status = error.$metadata?.httpStatusCode;
  const code = error.Code ?? error.name;
  return `${code}${status ? ` (HTTP ${status})` : ''}: ${error.message}`;
}

async function step(call, run) {
  try {
    await run();
    console.log(`ok ${call}`);
  } catch (error) {
    failures.push(call);
    console.log(`FAIL ${call}: ${describe(error)}`);
  }
}

/** Runs a call that must fail and returns its error. */
async function rejection(promise) {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected an error, the call succeeded');
}

async function body(key, Range) {
  const got = await s3.send(new GetObjectCommand({ Bucket, Key: key, Range }));
  return { got, bytes: Buffer.from(await got.Body.transformToByteArray()) };
}

const small = testBytes(1000, 'small');
const partSizes = [5 * MiB, 5 * MiB, 12345];
const parts = partSizes.map((size, i) => testBytes(size, `part-${i + 1}`));
const big = Buffer.concat(parts);

const watchdog = setTimeout(() => {
  console.log('FAIL smoke: still running after 5 minutes');
  process.exit(1);
}, 300_000);
watchdog.unref();

await step('CreateBucket', async () => {
  const created = await s3.send(new CreateBucketCommand({ Bucket }));
  note(`CreateBucket ${Bucket}: Location ${created.Location}`);
});

await step('HeadBucket', async () => {
  const head = await s3.send(new HeadBucketCommand({ Bucket }));
  note(`HeadBucket: BucketRegion ${head.BucketRegion}`);
  const missing = await rejection(s3.send(new HeadBucketCommand({ Bucket: `${Bucket}-missing` })));
  note(`HeadBucket of a missing bucket: ${describe(missing)}`);
  check(missing.$metadata?.httpStatusCode === 404, `missing bucket: want 404, got ${describe(missing)}`);
});

await step('PutObject', async () => {
  const put = await s3.send(
    new PutObjectCommand({
      Bucket,
      Key: 'obj/small.bin',
      Body: small,
      ContentType: 'application/octet-stream',
      Metadata: { sha256: createHash('sha256').update(small).digest('hex') },
    }),
  );
  note(`PutObject ETag ${put.ETag}`);
  check(put.ETag === `"${md5(small)}"`, `ETag ${put.ETag}, want "${md5(small)}"`);
});

await step('HeadObject', async () => {
  const head = await s3.send(new HeadObjectCommand({ Bucket, Key: 'obj/small.bin' }));
  note(
    `HeadObject: ETag ${head.ETag} ContentLength ${head.ContentLength} ContentType ${head.ContentType} ` +
      `AcceptRanges ${head.AcceptRanges} LastModified ${head.LastModified?.toISOString()} ` +
      `Metadata ${JSON.stringify(head.Metadata)}`,
  );
  check(head.ContentLength === small.length, `ContentLength ${head.ContentLength}`);
  check(head.ETag === `"${md5(small)}"`, `ETag ${head.ETag}`);
  check(head.Metadata?.sha256 === createHash('sha256').update(small).digest('hex'), 'user metadata lost');
  const missing = await rejection(s3.send(new HeadObjectCommand({ Bucket, Key: 'obj/missing.bin' })));
  note(`HeadObject of a missing key: ${describe(missing)}`);
  check(missing.$metadata?.httpStatusCode === 404, `missing key: want 404, got ${describe(missing)}`);
});

await step('GetObject Range bytes=1-3', async () => {
  const { got, bytes } = await body('obj/small.bin', 'bytes=1-3');
  note(`GetObject bytes=1-3: ContentRange ${got.ContentRange} ContentLength ${got.ContentLength} ETag ${got.ETag}`);
  sameBytes(bytes, small.subarray(1, 4), 'bytes 1-3');
  check(got.ContentRange === `bytes 1-3/${small.length}`, `ContentRange ${got.ContentRange}`);
});

await step('GetObject Range bytes=-5', async () => {
  const { got, bytes } = await body('obj/small.bin', 'bytes=-5');
  note(`GetObject bytes=-5: ContentRange ${got.ContentRange}`);
  sameBytes(bytes, small.subarray(small.length - 5), 'last 5 bytes');
  check(got.ContentRange === `bytes ${small.length - 5}-${small.length - 1}/${small.length}`, got.ContentRange);
});

await step('GetObject Range beyond the end (416)', async () => {
  const error = await rejection(body('obj/small.bin', `bytes=${small.length}-`));
  note(`GetObject of an unsatisfiable range: ${describe(error)}`);
  check(error.$metadata?.httpStatusCode === 416, `want 416, got ${describe(error)}`);
});

await step('CopyObject', async () => {
  const copied = await s3.send(
    new CopyObjectCommand({ Bucket, Key: 'obj/copy.bin', CopySource: `${Bucket}/obj/small.bin` }),
  );
  note(`CopyObject: CopyObjectResult.ETag ${copied.CopyObjectResult?.ETag}`);
  const { got, bytes } = await body('obj/copy.bin');
  sameBytes(bytes, small, 'copy');
  check(got.Metadata?.sha256 !== undefined, 'copy lost the user metadata (MetadataDirective COPY)');
});

let mpuEtag;
await step('CreateMultipartUpload + UploadPart x3 + CompleteMultipartUpload', async () => {
  const Key = 'mpu/big.bin';
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key }));
  const done = [];
  for (const [i, part] of parts.entries()) {
    const { ETag } = await s3.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: i + 1, Body: part }));
    check(ETag === `"${md5(part)}"`, `part ${i + 1} ETag ${ETag}, want "${md5(part)}"`);
    done.push({ PartNumber: i + 1, ETag });
  }
  const listed = await s3.send(new ListPartsCommand({ Bucket, Key, UploadId }));
  note(`ListParts: ${listed.Parts?.map((p) => `${p.PartNumber}:${p.Size}:${p.ETag}`).join(' ')}`);
  check(listed.Parts?.length === 3, `ListParts saw ${listed.Parts?.length} parts`);
  const completed = await s3.send(
    new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts: done } }),
  );
  const s3Style = `"${createHash('md5')
    .update(Buffer.concat(parts.map((p) => createHash('md5').update(p).digest())))
    .digest('hex')}-${parts.length}"`;
  mpuEtag = completed.ETag;
  note(`CompleteMultipartUpload: ETag ${completed.ETag} (S3 computes ${s3Style}), Location ${completed.Location}`);
  check(completed.ETag === s3Style, `ETag ${completed.ETag}, S3 would say ${s3Style}`);
});

await step('GetObject of the multipart object', async () => {
  const { got, bytes } = await body('mpu/big.bin');
  note(`GetObject multipart: ETag ${got.ETag} ContentLength ${got.ContentLength}`);
  sameBytes(bytes, big, 'multipart object');
  check(got.ETag === mpuEtag, `GET ETag ${got.ETag} differs from Complete's ${mpuEtag}`);
  const head = await s3.send(new HeadObjectCommand({ Bucket, Key: 'mpu/big.bin' }));
  check(head.ETag === mpuEtag, `HEAD ETag ${head.ETag} differs from Complete's ${mpuEtag}`);
  const { bytes: across } = await body('mpu/big.bin', `bytes=${5 * MiB - 2}-${5 * MiB + 1}`);
  sameBytes(across, big.subarray(5 * MiB - 2, 5 * MiB + 2), 'range across parts 1 and 2');
});

await step('ListParts', async () => {
  // Covered inside the multipart step above; a finished upload's parts are gone.
  const error = await rejection(s3.send(new ListPartsCommand({ Bucket, Key: 'mpu/big.bin', UploadId: 'no-such' })));
  note(`ListParts of an unknown upload: ${describe(error)}`);
  check(error.name === 'NoSuchUpload', `want NoSuchUpload, got ${describe(error)}`);
});

await step('UploadPartCopy', async () => {
  const Key = 'mpu/copied.bin';
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key }));
  const ranges = [
    [0, 5 * MiB + 99],
    [5 * MiB + 100, big.length - 1],
  ];
  const done = [];
  for (const [i, [first, last]] of ranges.entries()) {
    const copied = await s3.send(
      new UploadPartCopyCommand({
        Bucket,
        Key,
        UploadId,
        PartNumber: i + 1,
        CopySource: `${Bucket}/mpu/big.bin`,
        CopySourceRange: `bytes=${first}-${last}`,
      }),
    );
    done.push({ PartNumber: i + 1, ETag: copied.CopyPartResult.ETag });
    const want = `"${md5(big.subarray(first, last + 1))}"`;
    check(copied.CopyPartResult.ETag === want, `part ${i + 1} ETag ${copied.CopyPartResult.ETag}, want ${want}`);
  }
  await s3.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts: done } }));
  const { bytes } = await body(Key);
  sameBytes(bytes, big, 'object assembled by UploadPartCopy');
});

let pendingUploadId;
await step('ListMultipartUploads', async () => {
  const Key = 'mpu/pending.bin';
  ({ UploadId: pendingUploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key })));
  await s3.send(new UploadPartCommand({ Bucket, Key, UploadId: pendingUploadId, PartNumber: 1, Body: small }));
  const listed = await s3.send(new ListMultipartUploadsCommand({ Bucket, Prefix: 'mpu/' }));
  note(`ListMultipartUploads: ${listed.Uploads?.map((u) => `${u.Key}:${u.UploadId}`).join(' ')}`);
  check(listed.Uploads?.length === 1, `want 1 upload, got ${listed.Uploads?.length ?? 0}`);
  check(listed.Uploads[0].Key === Key && listed.Uploads[0].UploadId === pendingUploadId, 'wrong upload listed');
});

await step('AbortMultipartUpload', async () => {
  const Key = 'mpu/pending.bin';
  await s3.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId: pendingUploadId }));
  const listed = await s3.send(new ListMultipartUploadsCommand({ Bucket, Prefix: 'mpu/' }));
  check(!listed.Uploads?.length, `${listed.Uploads?.length} uploads left after the abort`);
  const error = await rejection(
    s3.send(new UploadPartCommand({ Bucket, Key, UploadId: pendingUploadId, PartNumber: 2, Body: small })),
  );
  note(`UploadPart to an aborted upload: ${describe(error)}`);
  check(error.name === 'NoSuchUpload', `want NoSuchUpload, got ${describe(error)}`);
});

await step('Upload (lib-storage, 11 MiB in 5 MiB parts)', async () => {
  const Key = 'mpu/lib-storage.bin';
  const content = testBytes(11 * MiB, 'lib-storage');
  const upload = new Upload({ client: s3, params: { Bucket, Key, Body: content }, partSize: 5 * MiB, queueSize: 2 });
  const done = await upload.done();
  note(`lib-storage Upload: ETag ${done.ETag}`);
  const { bytes } = await body(Key);
  sameBytes(bytes, content, 'lib-storage upload');
});

const listKeys = ['list/a', 'list/b', 'list/c/d', 'list/e', 'list/f'];
await step('ListObjectsV2 Prefix + MaxKeys 2 pagination', async () => {
  for (const Key of listKeys) await s3.send(new PutObjectCommand({ Bucket, Key, Body: Key }));
  const seen = [];
  let ContinuationToken;
  let pages = 0;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket, Prefix: 'list/', MaxKeys: 2, ContinuationToken }));
    pages += 1;
    check(page.KeyCount === page.Contents?.length, `KeyCount ${page.KeyCount} vs ${page.Contents?.length} keys`);
    check((page.Contents?.length ?? 0) <= 2, `page of ${page.Contents?.length}`);
    for (const object of page.Contents ?? []) {
      if (pages === 1 && seen.length === 0) {
        note(`ListObjectsV2 entry: ${JSON.stringify({ ...object, LastModified: object.LastModified?.toISOString() })}`);
      }
      seen.push(object.Key);
    }
    ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    check(!page.IsTruncated || ContinuationToken, 'IsTruncated without NextContinuationToken');
  } while (ContinuationToken && pages < 10);
  check(JSON.stringify(seen) === JSON.stringify(listKeys), `keys ${seen.join(',')}`);
  check(pages === 3, `${pages} pages for 5 keys`);
  const delimited = await s3.send(new ListObjectsV2Command({ Bucket, Prefix: 'list/', Delimiter: '/' }));
  const prefixes = delimited.CommonPrefixes?.map((p) => p.Prefix) ?? [];
  check(JSON.stringify(prefixes) === '["list/c/"]', `CommonPrefixes ${prefixes.join(',')}`);
});

await step('DeleteObject', async () => {
  await s3.send(new DeleteObjectCommand({ Bucket, Key: 'obj/copy.bin' }));
  const error = await rejection(s3.send(new HeadObjectCommand({ Bucket, Key: 'obj/copy.bin' })));
  check(error.$metadata?.httpStatusCode === 404, `after delete: ${describe(error)}`);
  await s3.send(new DeleteObjectCommand({ Bucket, Key: 'obj/never-existed.bin' }));
  const multipart = await s3.send(new DeleteObjectCommand({ Bucket, Key: 'mpu/copied.bin' }));
  note(`DeleteObject of a multipart object: HTTP ${multipart.$metadata.httpStatusCode}`);
});

const deleteObjects = (Keys) => new DeleteObjectsCommand({ Bucket, Delete: { Objects: Keys.map((Key) => ({ Key })) } });

await step('DeleteObjects (SDK default: CRC32 checksum, no Content-MD5)', async () => {
  const deleted = await s3.send(deleteObjects([listKeys[0], 'list/never-existed']));
  check(!deleted.Errors?.length, `errors ${JSON.stringify(deleted.Errors)}`);
});

/** Swift before 2.35 requires Content-MD5 on DeleteObjects, which SDK v3 no longer sends; this adds it. */
const contentMd5 = (next) => async (args) => {
  const request = args.request;
  if (request.body !== undefined && request.headers) {
    request.headers['content-md5'] = createHash('md5').update(request.body).digest('base64');
  }
  return next(args);
};

await step('DeleteObjects (with Content-MD5 added)', async () => {
  const command = deleteObjects([...listKeys, 'list/never-existed']);
  command.middlewareStack.add(contentMd5, { step: 'build', priority: 'low', name: 'contentMd5' });
  const deleted = await s3.send(command);
  note(`DeleteObjects: Deleted ${deleted.Deleted?.length}, Errors ${JSON.stringify(deleted.Errors ?? [])}`);
  check(!deleted.Errors?.length, `errors ${JSON.stringify(deleted.Errors)}`);
  check(deleted.Deleted?.length === listKeys.length + 1, `Deleted ${deleted.Deleted?.length}`);
  const left = await s3.send(new ListObjectsV2Command({ Bucket, Prefix: 'list/' }));
  check(!left.Contents?.length, `${left.Contents?.length} keys left`);
});

await step('presigned GET URL with ResponseContentDisposition', async () => {
  const disposition = 'attachment; filename="Win11 arm.pvmp"';
  const url = await getSignedUrl(
    s3,
    new GetObjectCommand({ Bucket, Key: 'obj/small.bin', ResponseContentDisposition: disposition }),
    { expiresIn: 300 },
  );
  const response = await fetch(url);
  if (response.status !== 200)
    throw new Error(`GET status ${response.status}: ${(await response.text()).slice(0, 300)}`);
  sameBytes(Buffer.from(await response.arrayBuffer()), small, 'presigned GET');
  const got = response.headers.get('content-disposition');
  note(`presigned GET: Content-Disposition ${got}`);
  check(got === disposition, `Content-Disposition ${got}`);
  const ranged = await fetch(url, { headers: { Range: 'bytes=10-19' } });
  check(ranged.status === 206, `ranged presigned GET status ${ranged.status}`);
  sameBytes(Buffer.from(await ranged.arrayBuffer()), small.subarray(10, 20), 'ranged presigned GET');
  const head = await fetch(url, { method: 'HEAD' });
  note(`HEAD with a URL presigned for GET: HTTP ${head.status}`);
  const tampered = await fetch(
    url.replace('obj%2Fsmall.bin', 'obj%2Fcopy.bin').replace('obj/small.bin', 'obj/copy.bin'),
  );
  note(`presigned URL for another key: HTTP ${tampered.status}`);
  check(tampered.status === 403, `tampered URL answered ${tampered.status}`);
});

await step('GetObject of a missing key (NoSuchKey)', async () => {
  const error = await rejection(body('obj/missing.bin'));
  note(`GetObject of a missing key: ${describe(error)}`);
  check(error.name === 'NoSuchKey', `want NoSuchKey, got ${describe(error)}`);
  check(error.$metadata?.httpStatusCode === 404, `want 404, got ${describe(error)}`);
});

await step('DeleteBucket', async () => {
  const notEmpty = await rejection(s3.send(new DeleteBucketCommand({ Bucket })));
  note(`DeleteBucket of a non-empty bucket: ${describe(notEmpty)}`);
  for (const Key of ['obj/small.bin', 'mpu/big.bin', 'mpu/lib-storage.bin']) {
    await s3.send(new DeleteObjectCommand({ Bucket, Key }));
  }
  await s3.send(new DeleteBucketCommand({ Bucket }));
  const error = await rejection(s3.send(new HeadBucketCommand({ Bucket })));
  check(error.$metadata?.httpStatusCode === 404, `bucket still there: ${describe(error)}`);
});

if (failures.length) {
  console.log(`${failures.length} call(s) failed: ${failures.join(', ')}`);
  process.exit(1);
}
