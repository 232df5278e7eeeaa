// Small DOM helpers shared by the admin page's modules.

/** Appends a table cell holding `content` (a node or text) to `row`; returns it. */
export function cell(row, content) {
  const td = document.createElement('td');
  if (content instanceof Node) td.append(content); else td.textContent = content;
  row.append(td);
  return td;
}

/** A button with a class and a click handler. */
export function button(text, cls, onclick) {
  const b = document.createElement('button');
  b.textContent = text;
  b.className = cls;
  b.onclick = onclick;
  return b;
}
