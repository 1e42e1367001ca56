/**
 * A report as a list of blocks, written out twice: as Markdown (charts linked as files beside
 * it) and as one self-contained HTML file (charts inlined as SVG, styles inline, no scripts,
 * no external resources), so report.md and report.html never say different things.
 */

/** A table cell; `tone` colours a verdict in HTML. */
export type Cell = string | { readonly text: string; readonly tone?: 'good' | 'bad' | 'muted' };

export type Block =
  | { readonly kind: 'heading'; readonly level: 1 | 2 | 3; readonly text: string }
  | { readonly kind: 'paragraph'; readonly text: string }
  | { readonly kind: 'list'; readonly items: readonly string[] }
  | { readonly kind: 'table'; readonly header: readonly string[]; readonly rows: readonly (readonly Cell[])[] }
  | { readonly kind: 'chart'; readonly title: string; readonly svg: string; readonly file: string; readonly notes: readonly string[] }
  | { readonly kind: 'code'; readonly summary: string; readonly text: string };

function cellText(c: Cell): string {
  return typeof c === 'string' ? c : c.text;
}

function escapeMarkdownCell(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

export function toMarkdown(blocks: readonly Block[]): string {
  const out: string[] = [];
  for (const b of blocks) {
    switch (b.kind) {
      case 'heading':
        out.push(`${'#'.repeat(b.level)} ${b.text}`);
        break;
      case 'paragraph':
        out.push(b.text);
        break;
      case 'list':
        out.push(b.items.map((i) => `- ${i}`).join('\n'));
        break;
      case 'table': {
        const lines = [
          `| ${b.header.map(escapeMarkdownCell).join(' | ')} |`,
          `|${b.header.map(() => ' --- ').join('|')}|`,
          ...b.rows.map((r) => `| ${r.map((c) => escapeMarkdownCell(cellText(c))).join(' | ')} |`),
        ];
        out.push(lines.join('\n'));
        break;
      }
      case 'chart':
        out.push([`![${b.title}](${b.file})`, ...b.notes.map((n) => `*${n}*`)].join('\n\n'));
        break;
      case 'code': {
        // A fence longer than any backtick run inside keeps the block closed.
        const fence = '`'.repeat(Math.max(3, ...[...b.text.matchAll(/`+/g)].map((m) => m[0].length + 1)));
        out.push(`<details><summary>${escapeHtml(b.summary)}</summary>\n\n${fence}json\n${b.text}\n${fence}\n\n</details>`);
        break;
      }
    }
  }
  return `${out.join('\n\n')}\n`;
}

export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/**
 * An SVG ready to inline: no XML prolog or doctype, and every id prefixed so that two charts
 * in one page cannot resolve each other's clip paths or gradients.
 */
export function inlineSvg(svg: string, idPrefix: string): string {
  return svg
    .replace(/<\?xml[^>]*\?>\s*/g, '')
    .replace(/<!DOCTYPE[^>]*>\s*/gi, '')
    .replace(/\bid="([^"]+)"/g, `id="${idPrefix}$1"`)
    .replace(/url\(#([^)]+)\)/g, `url(#${idPrefix}$1)`)
    .replace(/(xlink:href|href)="#([^"]+)"/g, `$1="#${idPrefix}$2"`);
}

const STYLE = `
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { font-size: 1.3em; border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; } h3 { font-size: 1.1em; }
table { border-collapse: collapse; margin: 1em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.good { background: #e6f4e6; } td.bad { background: #fbe4e4; } td.muted { color: #777; }
figure { margin: 1.5em 0; } figure svg { max-width: 100%; height: auto; } figcaption { font-size: .85em; color: #555; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: .85em; }
`;

export function toHtml(title: string, blocks: readonly Block[]): string {
  const out: string[] = [];
  let chartIndex = 0;
  for (const b of blocks) {
    switch (b.kind) {
      case 'heading':
        out.push(`<h${b.level}>${escapeHtml(b.text)}</h${b.level}>`);
        break;
      case 'paragraph':
        out.push(`<p>${escapeHtml(b.text)}</p>`);
        break;
      case 'list':
        out.push(`<ul>${b.items.map((i) => `<li>${escapeHtml(i)}</li>`).join('')}</ul>`);
        break;
      case 'table': {
        const head = `<tr>${b.header.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr>`;
        const rows = b.rows
          .map(
            (r) =>
              `<tr>${r.map((c) => (typeof c === 'string' || c.tone === undefined ? `<td>${escapeHtml(cellText(c))}</td>` : `<td class="${c.tone}">${escapeHtml(c.text)}</td>`)).join('')}</tr>`,
          )
          .join('\n');
        out.push(`<table>\n<thead>${head}</thead>\n<tbody>\n${rows}\n</tbody>\n</table>`);
        break;
      }
      case 'chart':
        chartIndex += 1;
        out.push(
          `<figure class="chart" data-chart="${escapeHtml(b.file)}">\n${inlineSvg(b.svg, `c${chartIndex}-`)}\n<figcaption>${escapeHtml(b.title)}${b.notes.map((n) => `<br>${escapeHtml(n)}`).join('')}</figcaption>\n</figure>`,
        );
        break;
      case 'code':
        out.push(`<details><summary>${escapeHtml(b.summary)}</summary><pre>${escapeHtml(b.text)}</pre></details>`);
        break;
    }
  }
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
${out.join('\n')}
</body>
</html>
`;
}
