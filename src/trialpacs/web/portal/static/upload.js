/* Upload: files, folders or zip archives sent to the site's quarantine with STOW-RS in batches. */
(function () {
  'use strict';
  var BATCH_FILES = 16;
  var BATCH_BYTES = 16 * 1024 * 1024;
  var form = document.getElementById('upload-form');
  if (!form) return;
  var drop = document.getElementById('drop');
  var progress = document.getElementById('progress');
  var summary = document.getElementById('summary');
  var results = document.querySelector('#results tbody');
  var pipeline = document.getElementById('pipeline');
  var target = document.getElementById('target');
  var timepoint = document.getElementById('timepoint');

  // The visits the chosen trial declares; the pipeline names the rest from the images.
  function fillTimepoints() {
    var option = target.options[target.selectedIndex];
    var ids = ((option && option.getAttribute('data-timepoints')) || '').split(' ').filter(Boolean);
    timepoint.length = 1;
    ids.forEach(function (id) {
      var o = document.createElement('option');
      o.value = id;
      o.textContent = id;
      timepoint.appendChild(o);
    });
  }
  target.addEventListener('change', fillTimepoints);
  fillTimepoints();

  function row(name, text, cls) {
    var tr = document.createElement('tr');
    var a = document.createElement('td');
    var b = document.createElement('td');
    a.textContent = name;
    b.textContent = text;
    tr.className = cls || '';
    tr.appendChild(a);
    tr.appendChild(b);
    results.appendChild(tr);
    return b;
  }

  // --- reading what was dropped -------------------------------------------------
  function readEntry(entry, prefix, out) {
    return new Promise(function (resolve) {
      if (entry.isFile) {
        entry.file(function (f) { out.push({ name: prefix + f.name, blob: f }); resolve(); }, function () { resolve(); });
        return;
      }
      var reader = entry.createReader();
      var all = [];
      (function more() {
        reader.readEntries(function (batch) {
          if (!batch.length) {
            Promise.all(all.map(function (e) { return readEntry(e, prefix + entry.name + '/', out); })).then(resolve);
            return;
          }
          all = all.concat(Array.prototype.slice.call(batch));
          more();
        }, function () { resolve(); });
      })();
    });
  }

  function u16(v, o) { return v.getUint16(o, true); }
  function u32(v, o) { return v.getUint32(o, true); }

  // A zip's members, inflated in the browser (DecompressionStream); no library needed.
  function unzip(file) {
    return file.arrayBuffer().then(function (buf) {
      var v = new DataView(buf);
      var eocd = -1;
      for (var i = buf.byteLength - 22; i >= Math.max(0, buf.byteLength - 65557); i--) {
        if (u32(v, i) === 0x06054b50) { eocd = i; break; }
      }
      if (eocd < 0) throw new Error('not a zip archive');
      var count = u16(v, eocd + 10);
      var at = u32(v, eocd + 16);
      if (at === 0xffffffff || count === 0xffff) throw new Error('ZIP64 archives are not supported; zip smaller folders');
      var jobs = [];
      for (var n = 0; n < count; n++) {
        if (u32(v, at) !== 0x02014b50) throw new Error('damaged zip directory');
        var method = u16(v, at + 10);
        var size = u32(v, at + 20);
        var nameLen = u16(v, at + 28);
        var extra = u16(v, at + 30);
        var comment = u16(v, at + 32);
        var local = u32(v, at + 42);
        var name = new TextDecoder().decode(new Uint8Array(buf, at + 46, nameLen));
        at += 46 + nameLen + extra + comment;
        if (name.endsWith('/')) continue;
        var start = local + 30 + u16(v, local + 26) + u16(v, local + 28);
        var data = new Blob([new Uint8Array(buf, start, size)]);
        jobs.push(inflate(file.name + '/' + name, data, method));
      }
      return Promise.all(jobs);
    });
  }

  function inflate(name, data, method) {
    if (method === 0) return Promise.resolve({ name: name, blob: data });
    if (method !== 8) return Promise.resolve({ name: name, error: 'compression method ' + method + ' is not supported' });
    var stream = data.stream().pipeThrough(new DecompressionStream('deflate-raw'));
    return new Response(stream).blob().then(function (b) { return { name: name, blob: b }; });
  }

  function expand(items) {
    var out = [];
    return Promise.all(items.map(function (it) {
      if (/\.zip$/i.test(it.name)) {
        return unzip(it.blob).then(function (members) { out.push.apply(out, members); },
          function (e) { out.push({ name: it.name, error: e.message }); });
      }
      out.push(it);
      return Promise.resolve();
    })).then(function () { return out; });
  }

  // The SOP Instance UID from the file meta header (always explicit VR little endian).
  function sopUid(blob) {
    return blob.slice(0, 8192).arrayBuffer().then(function (buf) {
      var bytes = new Uint8Array(buf);
      if (buf.byteLength < 140 || String.fromCharCode(bytes[128], bytes[129], bytes[130], bytes[131]) !== 'DICM') return null;
      var v = new DataView(buf);
      var at = 132;
      while (at + 8 <= buf.byteLength && u16(v, at) === 0x0002) {
        var elem = u16(v, at + 2);
        var vr = String.fromCharCode(bytes[at + 4], bytes[at + 5]);
        var len, head;
        if (['OB', 'OW', 'OF', 'SQ', 'UT', 'UN', 'UC', 'UR', 'OD', 'OL', 'OV', 'SV', 'UV'].indexOf(vr) >= 0) {
          len = u32(v, at + 8); head = 12;
        } else {
          len = u16(v, at + 6); head = 8;
        }
        if (elem === 0x0003) {
          return new TextDecoder().decode(bytes.slice(at + head, at + head + len)).replace(/[\0 ]+$/, '');
        }
        at += head + len;
      }
      return '';
    });
  }

  // --- sending ------------------------------------------------------------------
  function send(batch, url, onProgress) {
    var boundary = 'tp' + Math.random().toString(16).slice(2) + Date.now().toString(16);
    var parts = [];
    batch.forEach(function (f) {
      parts.push('--' + boundary + '\r\nContent-Type: application/dicom\r\n\r\n', f.blob, '\r\n');
    });
    parts.push('--' + boundary + '--\r\n');
    var body = new Blob(parts);
    return new Promise(function (resolve) {
      var xhr = new XMLHttpRequest();
      xhr.open('POST', url);
      xhr.setRequestHeader('Content-Type', 'multipart/related; type="application/dicom"; boundary=' + boundary);
      xhr.setRequestHeader('Accept', 'application/dicom+json');
      xhr.upload.onprogress = function (e) { onProgress(e.loaded); };
      xhr.onload = function () { resolve({ status: xhr.status, text: xhr.responseText }); };
      xhr.onerror = function () { resolve({ status: 0, text: 'the connection failed' }); };
      xhr.send(body);
    });
  }

  function outcome(response) {
    var byUid = {};
    var body = null;
    try { body = JSON.parse(response.text); } catch (e) { body = null; }
    if (body && !Array.isArray(body)) {
      ((body['00081199'] || {}).Value || []).forEach(function (it) {
        byUid[((it['00081155'] || {}).Value || [''])[0]] = { ok: true, text: 'stored' };
      });
      ((body['00081198'] || {}).Value || []).forEach(function (it) {
        var code = ((it['00081197'] || {}).Value || [''])[0];
        byUid[((it['00081155'] || {}).Value || [''])[0]] = { ok: false, text: 'refused (failure reason ' + code + ')' };
      });
    }
    var detail = body && body.detail ? String(body.detail) : 'HTTP ' + response.status;
    return { byUid: byUid, detail: detail };
  }

  function pollPipeline() {
    var parts = target.value.split('/');
    var url = pipeline.getAttribute('data-status-url') + '?trial=' + encodeURIComponent(parts[0]) + '&site=' + encodeURIComponent(parts[1]);
    var until = Date.now() + 120000;
    (function tick() {
      fetch(url, { credentials: 'same-origin' }).then(function (r) { return r.ok ? r.text() : ''; }).then(function (html) {
        if (html) pipeline.innerHTML = html; // our own server-escaped fragment
        if (Date.now() < until) setTimeout(tick, 2000);
      });
    })();
  }

  function upload(items) {
    var parts = target.value.split('/');
    var url = '/dicomweb/trials/' + encodeURIComponent(parts[0]) + '/sites/' + encodeURIComponent(parts[1]) + '/studies';
    if (timepoint.value) url += '?timepoint=' + encodeURIComponent(timepoint.value);
    results.textContent = '';
    summary.textContent = 'Reading files…';
    expand(items).then(function (files) {
      return Promise.all(files.map(function (f) {
        if (f.error) return Promise.resolve(f);
        return sopUid(f.blob).then(function (uid) { f.uid = uid; return f; });
      }));
    }).then(function (files) {
      var dicom = [];
      var stored = 0, failed = 0, skipped = 0;
      files.forEach(function (f) {
        if (f.error) { row(f.name, 'not sent: ' + f.error, 'failed'); failed++; }
        else if (f.uid === null) { row(f.name, 'skipped: not a DICOM file', 'skipped'); skipped++; }
        else { f.cell = row(f.name, 'waiting', 'waiting'); dicom.push(f); }
      });
      var total = dicom.reduce(function (s, f) { return s + f.blob.size; }, 0) || 1;
      var done = 0;
      progress.max = total;
      progress.value = 0;
      var batches = [];
      var cur = [], curBytes = 0;
      dicom.forEach(function (f) {
        if (cur.length && (cur.length >= BATCH_FILES || curBytes + f.blob.size > BATCH_BYTES)) { batches.push(cur); cur = []; curBytes = 0; }
        cur.push(f); curBytes += f.blob.size;
      });
      if (cur.length) batches.push(cur);
      var chain = Promise.resolve();
      batches.forEach(function (batch) {
        chain = chain.then(function () {
          var size = batch.reduce(function (s, f) { return s + f.blob.size; }, 0);
          batch.forEach(function (f) { f.cell.textContent = 'sending'; });
          return send(batch, url, function (loaded) { progress.value = done + Math.min(loaded, size); }).then(function (resp) {
            done += size;
            progress.value = done;
            var out = outcome(resp);
            batch.forEach(function (f) {
              var r = out.byUid[f.uid];
              if (!r) r = resp.status === 200 ? { ok: true, text: 'stored' } : { ok: false, text: 'not stored: ' + out.detail };
              f.cell.textContent = r.text;
              f.cell.parentNode.className = r.ok ? 'stored' : 'failed';
              if (r.ok) stored++; else failed++;
            });
            summary.textContent = stored + ' stored, ' + failed + ' failed, ' + skipped + ' skipped';
          });
        });
      });
      return chain.then(function () {
        summary.textContent = 'Done: ' + stored + ' stored, ' + failed + ' failed, ' + skipped + ' skipped';
        summary.setAttribute('data-done', 'true');
        pollPipeline();
      });
    }).catch(function (e) { summary.textContent = 'Upload stopped: ' + e.message; });
  }

  function fromInput(input) {
    return Array.prototype.map.call(input.files, function (f) {
      return { name: f.webkitRelativePath || f.name, blob: f };
    });
  }

  document.getElementById('files').addEventListener('change', function (e) { upload(fromInput(e.target)); });
  document.getElementById('folder').addEventListener('change', function (e) { upload(fromInput(e.target)); });
  ['dragenter', 'dragover'].forEach(function (t) {
    drop.addEventListener(t, function (e) { e.preventDefault(); drop.classList.add('over'); });
  });
  drop.addEventListener('dragleave', function () { drop.classList.remove('over'); });
  drop.addEventListener('drop', function (e) {
    e.preventDefault();
    drop.classList.remove('over');
    var items = Array.prototype.slice.call(e.dataTransfer.items || []);
    var out = [];
    var entries = items.map(function (it) { return it.webkitGetAsEntry && it.webkitGetAsEntry(); });
    if (entries.length && entries.every(Boolean)) {
      Promise.all(entries.map(function (en) { return readEntry(en, '', out); })).then(function () { upload(out); });
    } else {
      upload(Array.prototype.map.call(e.dataTransfer.files, function (f) { return { name: f.name, blob: f }; }));
    }
  });
  pollPipeline();
})();
