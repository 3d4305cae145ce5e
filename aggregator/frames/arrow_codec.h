// Grafana frames as Arrow IPC files, the bytes of DataResponse.frames (reference
// grafana-plugin-protocol.md §3.1): schema metadata name/refId/meta, field metadata
// tstype/labels/config, nulls in validity bitmaps, times as Timestamp(ns), JSON as Binary.
#pragma once

#include <string>
#include <string_view>

#include "aggregator/apimachinery/status.h"
#include "aggregator/frames/frame.h"

namespace dpa::frames {

// Decodes an Arrow IPC file (any number of record batches, concatenated). The bytes come from
// plugin processes and are fully bounds-checked; memory use is capped by a multiple of their
// length. Malformed -> ApiError::bad_gateway("invalid Arrow frame from plugin: <why>").
api::Expected<Frame> read_arrow(std::string_view bytes);

// Encodes the frame as an Arrow IPC file with one record batch, metadata V5, as the Go SDK does.
// Fields shorter than frame.rows() are padded with nulls/zero values. Precondition: each string
// or JSON column holds less than 2 GiB (Arrow Utf8/Binary offsets are 32-bit).
std::string write_arrow(const Frame& frame);

}  // namespace dpa::frames
