/**
 * The Parallels Desktop feed reader and writer without a server (server/services/pd-updates/feed-xml.ts and
 * feed.ts): hostile XML is refused quickly and cheaply, malformed entries are skipped with a reason, and the
 * served XML keeps every upstream element and attribute of a version, changing only FilePath.
 */
import { describe, expect, it } from 'vitest';
import { AppError } from '../../server/errors.js';
import {
  buildFeed,
  readFeed,
  type FeedVersion,
  type ReadFeed,
  type ServedVersion,
} from '../../server/services/pd-updates/feed.js';
import {
  children,
  FEED_LIMITS,
  parseXml,
  textOf,
  type XmlElement,
  type XmlNode,
} from '../../server/services/pd-updates/feed-xml.js';
import { feedXml } from '../helpers/pd-upstream.js';

const FILE = (v: string) => `https://download.parallels.com/desktop/v26/${v}/ParallelsDesktop-${v}.dmg`;
const LINK = (v: string) => `http://mirror.example.lan:8080/d/${'a'.repeat(64)}/ParallelsDesktop-${v}.dmg`;

/** The FEED_INVALID error `fn` throws (fails the test when it throws nothing or something else). */
function feedInvalid(fn: () => unknown): AppError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('FEED_INVALID');
    return err as AppError;
  }
  throw new Error('expected FEED_INVALID');
}

/** Runs `fn`, which must refuse its input, and says how long it took and how much the heap grew meanwhile. */
function refusalCost(fn: () => unknown): { ms: number; heapGrowth: number; error: AppError } {
  const heap = process.memoryUsage().heapUsed;
  const start = performance.now();
  const error = feedInvalid(fn);
  return { ms: performance.now() - start, heapGrowth: process.memoryUsage().heapUsed - heap, error };
}

/** A whole feed around `versions` (Version elements as XML text). */
const wrap = (versions: string, root = 'ParallelsUpdates') =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<${root} schemaVersion="1.0"><Product><ProductName>Parallels Desktop</ProductName>` +
  `<UpdateEnabled>1</UpdateEnabled>${versions}</Product></${root}>`;

const versionXml = (numbers: [string, string, string, string], filePath: string | null, extra = '') =>
  `<Version><Major>${numbers[0]}</Major><Minor>${numbers[1]}</Minor><SubMinor>${numbers[2]}</SubMinor>` +
  `<SubSubMinor>${numbers[3]}</SubSubMinor><StringRepresentation/><Update uuid="u">` +
  `${filePath === null ? '' : `<FilePath>${filePath}</FilePath>`}<FileSize>1</FileSize>${extra}</Update></Version>`;

/** Served as the mirror would serve it: every FilePath of the version's file replaced by its link. */
function served(v: FeedVersion): ServedVersion {
  return { ...v, fileUrl: v.fileUrl, link: LINK(v.version) };
}

/** An element tree without layout: whitespace-only text between elements dropped, as the writer re-indents it. */
function withoutLayout(element: XmlElement): XmlElement {
  const elementChildren = children(element).length > 0;
  const nodes: XmlNode[] = [];
  for (const c of element.children) {
    if (typeof c !== 'string') nodes.push(withoutLayout(c));
    else if (!elementChildren) nodes.push(c);
    else if (c.trim() !== '') nodes.push(c.trim());
  }
  return { name: element.name, attributes: element.attributes, children: nodes };
}

describe('hostile XML', () => {
  it('refuses a billion-laughs bomb at its DOCTYPE, in milliseconds and without expanding anything', () => {
    const levels = Array.from(
      { length: 9 },
      (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i === 0 ? '' : i};`.repeat(10)}">`,
    ).join('\n');
    const bomb = `<?xml version="1.0"?>\n<!DOCTYPE ParallelsUpdates [\n<!ENTITY lol "lol">\n${levels}\n]>\n<ParallelsUpdates><Product>&lol9;</Product></ParallelsUpdates>`;
    const cost = refusalCost(() => readFeed(bomb, 'bomb.xml'));
    expect(cost.error.message).toMatch(/^bomb\.xml is not a usable update feed: it declares a DOCTYPE/);
    expect(cost.ms).toBeLessThan(500);
    // Expanded, &lol9; is 3 GB; nothing near that (nor a tenth of a feed's cap) may be allocated.
    expect(cost.heapGrowth).toBeLessThan(32 * 1024 * 1024);
  });

  it('refuses a quadratic-blowup bomb near the size cap without reading past the first refusal', () => {
    const entity = 'x'.repeat(100_000);
    const refs = '&a;'.repeat(Math.floor((FEED_LIMITS.maxBytes - 200_000) / 3));
    const bomb = `<?xml version="1.0"?><!DOCTYPE ParallelsUpdates [<!ENTITY a "${entity}">]><ParallelsUpdates>${refs}</ParallelsUpdates>`;
    expect(Buffer.byteLength(bomb)).toBeLessThan(FEED_LIMITS.maxBytes);
    const cost = refusalCost(() => readFeed(bomb, 'quadratic.xml'));
    expect(cost.error.message).toMatch(/declares a DOCTYPE/);
    // Reading on after the DOCTYPE took seconds (each reference a parse error); the refusal ends the parse.
    expect(cost.ms).toBeLessThan(500);
    expect(cost.heapGrowth).toBeLessThan(32 * 1024 * 1024);
  });

  it('stops at the first undefined entity even when the document holds a million of them', () => {
    const flood = `<ParallelsUpdates>${'&a;'.repeat(1_000_000)}</ParallelsUpdates>`;
    const cost = refusalCost(() => readFeed(flood, 'flood.xml'));
    expect(cost.error.message).toMatch(/malformed XML \(1:\d+: undefined entity/);
    expect(cost.ms).toBeLessThan(500);
  });

  it('refuses an external entity and an external DTD without reading either', () => {
    const xxe = `<?xml version="1.0"?><!DOCTYPE ParallelsUpdates [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><ParallelsUpdates><Product>&xxe;</Product></ParallelsUpdates>`;
    expect(feedInvalid(() => readFeed(xxe, 'xxe')).message).toMatch(/DOCTYPE/);
    const dtd = `<?xml version="1.0"?><!DOCTYPE ParallelsUpdates SYSTEM "http://127.0.0.1:9/evil.dtd"><ParallelsUpdates/>`;
    expect(feedInvalid(() => readFeed(dtd, 'dtd')).message).toMatch(/DOCTYPE/);
    // Without a DOCTYPE the reference is simply undefined; its text never reaches the tree.
    const bare = wrap(versionXml(['26', '3', '3', '57507'], `&xxe;${FILE('26.3.3-57507')}`));
    expect(feedInvalid(() => readFeed(bare, 'bare')).message).toMatch(/undefined entity/);
  });

  it('keeps the five predefined entities and character references (they expand to one character each)', () => {
    const root = parseXml('<a t="&quot;&apos;&#x26;">&lt;&gt;&amp;&#65;</a>', 'x');
    expect(root.attributes).toEqual([['t', `"'&`]]);
    expect(textOf(root)).toBe('<>&A');
  });

  it('refuses non-XML junk: an HTML error page (with or without a doctype), plain text, an empty body', () => {
    for (const junk of [
      '<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head><body><h1>502</h1><hr><p>nginx</body></html>',
      '<html><body><p>Service unavailable<br></p></body></html>',
      'Service Unavailable',
      '',
      '{"versions": []}',
    ])
      feedInvalid(() => readFeed(junk, 'junk'));
    // Well-formed HTML is XML, but not a Parallels feed.
    expect(feedInvalid(() => readFeed('<html><body><p>moved</p></body></html>', 'page')).message).toBe(
      'page is not a Parallels update feed: its root is <html>',
    );
  });

  it('refuses a wrong root and a feed without Product', () => {
    expect(feedInvalid(() => readFeed(wrap(versionXml(['26', '3', '3', '1'], FILE('x')), 'rss'), 'f')).message).toBe(
      'f is not a Parallels update feed: its root is <rss>',
    );
    expect(feedInvalid(() => readFeed('<ParallelsUpdates schemaVersion="1.0"/>', 'f')).message).toBe(
      'f is not a Parallels update feed: it has no <Product>',
    );
  });

  it('caps depth, the number of elements and the size', () => {
    const deep = `${'<a>'.repeat(FEED_LIMITS.maxDepth + 1)}${'</a>'.repeat(FEED_LIMITS.maxDepth + 1)}`;
    expect(feedInvalid(() => parseXml(deep, 'deep')).message).toMatch(/nest deeper than 16/);
    const atDepth = `${'<a>'.repeat(FEED_LIMITS.maxDepth)}${'</a>'.repeat(FEED_LIMITS.maxDepth)}`;
    expect(parseXml(atDepth, 'ok').name).toBe('a');

    const many = `<r>${'<e/>'.repeat(FEED_LIMITS.maxElements)}</r>`;
    expect(feedInvalid(() => parseXml(many, 'many')).message).toMatch(/more than 50000 elements/);
    const enough = `<r>${'<e/>'.repeat(FEED_LIMITS.maxElements - 1)}</r>`;
    expect(parseXml(enough, 'ok').children).toHaveLength(FEED_LIMITS.maxElements - 1);

    // The cap counts bytes, not characters: 2-byte characters reach it at half the length.
    const wide = `<r>${'é'.repeat(FEED_LIMITS.maxBytes / 2)}</r>`;
    const cost = refusalCost(() => parseXml(wide, 'wide'));
    expect(cost.error.message).toBe(
      `wide is not a usable update feed: it is larger than ${FEED_LIMITS.maxBytes} bytes`,
    );
    expect(cost.ms).toBeLessThan(500);
  });
});

describe('reading versions', () => {
  const read = (xml: string): ReadFeed => readFeed(xml, 'feed');

  it('skips a Version without whole numbers or without a usable FilePath, with a reason, and keeps the others', () => {
    const feed = read(
      wrap(
        [
          versionXml(['26', '3', '3', '57507'], FILE('26.3.3-57507')),
          versionXml(['26', '3', '', '57480'], FILE('26.3.2-57480')),
          versionXml(['26', 'three', '1', '57000'], FILE('26.3.1-57000')),
          versionXml(['26', '2', '0', '56000'], null),
          versionXml(['26', '1', '0', '55000'], 'ftp://download.parallels.com/ParallelsDesktop.dmg'),
          versionXml(['26', '0', '1', '54000'], 'file:///etc/passwd'),
          versionXml(['26', '0', '0', '53000'], 'not a url'),
          '<Version><Major>25</Major><Minor>0</Minor><SubMinor>0</SubMinor><SubSubMinor>1</SubSubMinor></Version>',
          versionXml(['25', '4', '1', '52000'], `\n\t  ${FILE('25.4.1-52000')}  \n`),
        ].join(''),
      ),
    );
    expect(feed.versions.map((v) => v.version)).toEqual(['26.3.3-57507', '25.4.1-52000']);
    expect(feed.skipped).toEqual([
      'a <Version> without whole numbers in Major, Minor, SubMinor and SubSubMinor (?)',
      'a <Version> without whole numbers in Major, Minor, SubMinor and SubSubMinor (26.three.1-57000)',
      '26.2.0-56000: its FilePath is not a URL ("")',
      '26.1.0-55000: its FilePath is not http(s)',
      '26.0.1-54000: its FilePath is not http(s)',
      '26.0.0-53000: its FilePath is not a URL ("not a url")',
      '25.0.0-1: it has no <Update>',
    ]);
    // Whitespace around FilePath is trimmed, as Homebrew, Installomator and AutoPkg do.
    expect(feed.versions[1]!.fileUrl).toBe(FILE('25.4.1-52000'));
  });

  it('keeps the first of a version listed twice and says so', () => {
    const feed = read(
      wrap(
        versionXml(['26', '3', '3', '57507'], FILE('first')) + versionXml(['26', '3', '3', '57507'], FILE('second')),
      ),
    );
    expect(feed.versions.map((v) => v.fileUrl)).toEqual([FILE('first')]);
    expect(feed.skipped).toEqual(['26.3.3-57507: listed twice']);
  });

  it('takes the first FilePath and keeps FileSize exactly as written', () => {
    const feed = read(
      wrap(
        versionXml(
          ['26', '3', '3', '57507'],
          FILE('26.3.3-57507'),
          `<FilePath>${FILE('other')}</FilePath><FileSize>ignored</FileSize>`,
        ).replace('<FileSize>1</FileSize>', '<FileSize> 1.2 GB </FileSize>'),
      ),
    );
    expect(feed.versions[0]).toMatchObject({ fileUrl: FILE('26.3.3-57507'), fileSize: '1.2 GB' });
  });
});

describe('the served feed', () => {
  /** An upstream Version with everything a real one has and more: several locales, Ancestry, unknown elements. */
  const rich = `<?xml version="1.0" encoding="UTF-8"?>
<!-- a comment upstream -->
<ParallelsUpdates schemaVersion="1.0" vendor="Parallels &amp; Co">
  <Product kind="desktop">
    <ProductName>Parallels Desktop</ProductName>
    <UpdateEnabled>1</UpdateEnabled>
    <Version channel="stable">
      <Major>26</Major>
      <Minor>3</Minor>
      <SubMinor>3</SubMinor>
      <SubSubMinor>57507</SubSubMinor>
      <StringRepresentation>Fuji "R3" &lt;hotfix&gt; &amp; more</StringRepresentation>
      <Update uuid="desktop.26.3.3.57507.en_US.parallels.mac" priority="'high' &quot;now&quot;">
        <UpdateType>0</UpdateType>
        <UpdateName>Parallels Desktop 26.3.3 (57507)</UpdateName>
        <UpdateDescription>en_US#Fixes &lt;b&gt;bugs&lt;/b&gt; &amp; improves "stability" &gt; before</UpdateDescription>
        <UpdateDescription>de_DE#Behebt Fehler &amp; verbessert die Stabilität</UpdateDescription>
        <UpdateDescription>ja_JP#安定性を向上させます</UpdateDescription>
        <UpdateDescription lang="fr">fr_FR#<![CDATA[Corrige des <erreurs> & améliore]]></UpdateDescription>
        <FilePath>
          ${FILE('26.3.3-57507')}
        </FilePath>
        <FileSize>1143521</FileSize>
        <Status>1</Status>
        <DateTime>2026-11-02 10:15:00</DateTime>
        <Chargeable>0</Chargeable>
        <LocaleName>en_US</LocaleName>
        <DistributorName>Parallels</DistributorName>
        <OsType>mac</OsType>
        <MinimumOs build="24A335">15.0</MinimumOs>
        <Ancestry>
          <Ancestor>desktop.26.3.2.57480.en_US.parallels.mac</Ancestor>
          <Ancestor>desktop.26.3.1.57390.en_US.parallels.mac</Ancestor>
        </Ancestry>
        <Extra><Nested a="1"><Deeper/></Nested></Extra>
      </Update>
      <Update uuid="desktop.26.3.3.57507.zh_CN.parallels.mac">
        <FilePath>https://download.parallels.cn/desktop/v26/ParallelsDesktop-26.3.3-57507-cn.dmg</FilePath>
      </Update>
      <ReleaseNotes href="https://kb.parallels.com/130212">notes</ReleaseNotes>
    </Version>
  </Product>
</ParallelsUpdates>
`;

  it('keeps every element and attribute of Version and Update in order, changing only FilePath', () => {
    const upstream = readFeed(rich, 'upstream');
    expect(upstream.versions).toHaveLength(1);
    const version = upstream.versions[0]!;
    const xml = buildFeed([served(version)]);

    const out = parseXml(xml, 'served');
    const outVersion = children(children(out, 'Product')[0]!, 'Version')[0]!;
    // What upstream wrote, with only the FilePath of the version's file changed and the Update for another file
    // (this mirror holds one file per version) left out.
    const expected = withoutLayout(version.element);
    expected.children = expected.children.filter(
      (c) => typeof c === 'string' || c.name !== 'Update' || c.attributes[0]![1].endsWith('.en_US.parallels.mac'),
    );
    const update = children(expected, 'Update')[0]!;
    update.children = update.children.map((c) =>
      typeof c !== 'string' && c.name === 'FilePath' ? { ...c, children: [LINK('26.3.3-57507')] } : c,
    );
    expect(withoutLayout(outVersion)).toEqual(expected);

    // The values read back exactly, escaping included.
    const again = readFeed(xml, 'served').versions[0]!;
    expect(again.fileUrl).toBe(LINK('26.3.3-57507'));
    expect(again.fileSize).toBe('1143521');
    const againUpdate = children(again.element, 'Update')[0]!;
    expect(againUpdate.attributes).toEqual([
      ['uuid', 'desktop.26.3.3.57507.en_US.parallels.mac'],
      ['priority', `'high' "now"`],
    ]);
    expect(children(againUpdate, 'UpdateDescription').map((d) => textOf(d))).toEqual([
      'en_US#Fixes <b>bugs</b> & improves "stability" > before',
      'de_DE#Behebt Fehler & verbessert die Stabilität',
      'ja_JP#安定性を向上させます',
      'fr_FR#Corrige des <erreurs> & améliore',
    ]);
    expect(children(children(againUpdate, 'Ancestry')[0]!, 'Ancestor').map((a) => textOf(a))).toEqual([
      'desktop.26.3.2.57480.en_US.parallels.mac',
      'desktop.26.3.1.57390.en_US.parallels.mac',
    ]);
    expect(textOf(children(again.element, 'StringRepresentation')[0])).toBe('Fuji "R3" <hotfix> & more');

    // The frame: the root's and Product's attributes and the product elements come from upstream too.
    expect(out.attributes).toEqual([
      ['schemaVersion', '1.0'],
      ['vendor', 'Parallels & Co'],
    ]);
    expect(children(out, 'Product')[0]!.attributes).toEqual([['kind', 'desktop']]);
    // Markup characters are escaped in the bytes, never written raw.
    expect(xml).toContain('<StringRepresentation>Fuji "R3" &lt;hotfix&gt; &amp; more</StringRepresentation>');
    expect(xml).toContain('priority="\'high\' &quot;now&quot;"');
    expect(xml).toContain('vendor="Parallels &amp; Co"');
    expect(xml).not.toContain('<b>');
    expect(xml).not.toContain('download.parallels.c');
  });

  it('serves no upstream URL: a second FilePath in an Update becomes the link too', () => {
    const version = readFeed(
      wrap(
        versionXml(
          ['26', '3', '3', '57507'],
          FILE('26.3.3-57507'),
          '<FilePath kind="mirror">https://elsewhere.example/ParallelsDesktop.dmg</FilePath>',
        ),
      ),
      'upstream',
    ).versions[0]!;
    const xml = buildFeed([served(version)]);
    expect(xml).not.toMatch(/download\.parallels\.com|elsewhere\.example/);
    const update = children(parseXml(xml, 'served'), 'Product')
      .flatMap((p) => children(p, 'Version'))
      .flatMap((v) => children(v, 'Update'))[0]!;
    expect(children(update, 'FilePath')).toEqual([
      { name: 'FilePath', attributes: [], children: [LINK('26.3.3-57507')] },
      { name: 'FilePath', attributes: [['kind', 'mirror']], children: [LINK('26.3.3-57507')] },
    ]);
  });

  it('keeps mixed content (markup around text in a description) and carriage returns exactly', () => {
    const description = 'en_US#Fixes <b>bugs</b> and <i>crashes  <u>now</u></i>.\r\nMore: &amp; &lt;';
    const upstream = readFeed(
      wrap(
        versionXml(
          ['26', '3', '3', '57507'],
          FILE('26.3.3-57507'),
          `<UpdateDescription>${description.replace('\r', '&#13;')}</UpdateDescription><Note a="x&#13;y">&#13;</Note>`,
        ),
      ),
      'upstream',
    );
    const version = upstream.versions[0]!;
    const xml = buildFeed([served(version)]);
    expect(xml).toContain(
      '<UpdateDescription>en_US#Fixes <b>bugs</b> and <i>crashes  <u>now</u></i>.&#13;\nMore: &amp; &lt;</UpdateDescription>',
    );
    const back = children(readFeed(xml, 'served').versions[0]!.element, 'Update')[0]!;
    expect(children(back, 'UpdateDescription')[0]).toEqual(
      children(children(version.element, 'Update')[0]!, 'UpdateDescription')[0],
    );
    expect(children(back, 'Note')[0]).toEqual({ name: 'Note', attributes: [['a', 'x\ry']], children: ['\r'] });
  });

  it('round-trips the realistic feed of the test upstream', () => {
    const text = feedXml([
      {
        version: '26.3.3-57507',
        codename: 'Fuji',
        filePath: `  ${FILE('26.3.3-57507')}  `,
        fileSize: '1143521',
        ancestors: ['desktop.26.3.2.57480.en_US.parallels.mac'],
        descriptions: ['de_DE#Stabilität &amp; Leistung', 'fr_FR#Stabilité &lt;améliorée&gt;'],
      },
    ]);
    const version = readFeed(text, 'upstream').versions[0]!;
    const xml = buildFeed([served(version)]);
    const back = readFeed(xml, 'served').versions[0]!;
    const expected = withoutLayout(version.element);
    const update = children(expected, 'Update')[0]!;
    update.children = update.children.map((c) =>
      typeof c !== 'string' && c.name === 'FilePath' ? { ...c, children: [LINK('26.3.3-57507')] } : c,
    );
    expect(withoutLayout(back.element)).toEqual(expected);
    // Writing what was read again changes nothing: the served feed is stable byte for byte.
    expect(buildFeed([{ ...back, fileUrl: back.fileUrl, link: LINK('26.3.3-57507') }])).toBe(xml);
  });

  it('lists versions newest first by number: 26.10.0 is newer than 26.9.0, builds and majors compare as numbers', () => {
    const versions = ['26.9.0-100', '25.4.1-99999', '26.10.0-1', '26.9.0-99', '26.9.0-1000', '9.0.0-1', '26.10.1-2'];
    const upstream = readFeed(
      wrap(
        versions
          .map((v) => {
            const [n, b] = v.split('-') as [string, string];
            const [a, c, d] = n.split('.') as [string, string, string];
            return versionXml([a, c, d, b], FILE(v));
          })
          .join(''),
      ),
      'upstream',
    );
    const xml = buildFeed(upstream.versions.map(served));
    expect(readFeed(xml, 'served').versions.map((v) => v.version)).toEqual([
      '26.10.1-2',
      '26.10.0-1',
      '26.9.0-1000',
      '26.9.0-100',
      '26.9.0-99',
      '25.4.1-99999',
      '9.0.0-1',
    ]);
  });

  it('is a complete, empty feed when nothing is published', () => {
    const xml = buildFeed([]);
    const root = parseXml(xml, 'empty');
    expect(root.attributes).toEqual([['schemaVersion', '1.0']]);
    const product = children(root, 'Product')[0]!;
    expect(children(product).map((e) => `${e.name}=${textOf(e)}`)).toEqual([
      'ProductName=Parallels Desktop',
      'UpdateEnabled=1',
    ]);
  });
});
