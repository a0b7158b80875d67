// The device dialects as every editor dialog of this package offers them: one table, read by the
// dialect selects (ota-assign, chunk-server, progress-parser), by the rows each dialog shows for
// the chosen dialect, and by the OTA sidebar's filters. A new dialect is one entry here.
//   id       the value the runtime knows (src/core/dialects)
//   label    what the select shows
//   chunks   the device fetches its image in chunks over MQTT (chunk-server serves it)
//   fields   the dialog fields (node-input-<field>) that apply to this dialect only; a field no
//            entry names applies to every dialect
// Node-RED serves this file at resources/node-red-contrib-mqtt-ota/ota-dialects.js.
(function () {
  'use strict';
  if (typeof RED === 'undefined' || RED.otaDialects) return;
  var list = [
    { id: 'biotz', label: 'Biotz', chunks: false, fields: ['customer'] },
    { id: 'sming', label: 'Sming', chunks: false, fields: ['app', 'smingPrefix', 'smingEncoding', 'maxMessageKB'] },
    { id: 'tago', label: 'TagoIO', chunks: true, fields: ['tagoChunkSize', 'tagoRetain'] },
    { id: 'tasmota', label: 'Tasmota', chunks: false, fields: [] },
    { id: 'tencent', label: 'Tencent IoT Hub', chunks: false, fields: ['product'] },
    { id: 'thingsboard', label: 'ThingsBoard', chunks: true, fields: ['checksumAlgorithm', 'maxChunkSize'] },
  ];

  function byId(id) {
    for (var i = 0; i < list.length; i++) if (list[i].id === id) return list[i];
    return undefined;
  }

  /** Every field some dialect claims: the ones a dialog hides or shows. */
  function dialectFields() {
    var all = {};
    list.forEach(function (d) { d.fields.forEach(function (f) { all[f] = true; }); });
    return Object.keys(all);
  }

  /**
   * Fills a dialect select after its first option (the "any"/"auto" choice the dialog's HTML
   * keeps, with its i18n label), then shows only the rows that apply to the chosen dialect.
   * `opts.chunks`: offer only chunked dialects. `opts.value`: the node's saved value.
   */
  function bind(select, opts) {
    var $select = $(select);
    var prefix = opts.prefix || 'node-input-';
    $select.find('option').slice(1).remove();
    list.forEach(function (d) {
      if (opts.chunks && !d.chunks) return;
      $('<option>').val(d.id).text(d.label).appendTo($select);
    });
    if (opts.value !== undefined) $select.val(opts.value);
    if ($select.val() === null) $select.val($select.find('option').first().val());
    function apply() {
      var chosen = byId($select.val());
      dialectFields().forEach(function (f) {
        var row = $('#' + prefix + f).closest('.form-row');
        row.toggle(!chosen || chosen.fields.indexOf(f) >= 0);
      });
    }
    $select.on('change', apply);
    apply();
  }

  RED.otaDialects = { list: list, get: byId, fields: dialectFields, bind: bind };
})();
