// Process metrics (OpenTelemetry semantic conventions), observed at collect
// time from /proc and getrusage():
//   process.memory.usage                 By             resident set size
//   process.memory.virtual               By             virtual size
//   process.cpu.time                     s   counter    cpu.mode = user | system
//   process.open_file_descriptor.count   {file_descriptor}
//   process.thread.count                 {thread}
//   process.uptime                       s   gauge
#pragma once

#include "telemetry/metrics.h"

namespace wstrace::telemetry {

void register_process_metrics(MetricRegistry& registry);

}  // namespace wstrace::telemetry
