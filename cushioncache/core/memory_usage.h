// Memory figures users give and benchmarks report: byte sizes as written on a command
// line ("2GiB", "512M", "1.5 GB"), and the process's peak resident memory.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace cushioncache {

// "1234", "512K", "512KiB", "1.5G", "2 GB", "64MiB": K/M/G/T are binary (1024-based), as
// memory is sized; kInvalidArgument naming `what` for anything else or for <= 0.
std::int64_t parse_byte_size(std::string_view text, std::string_view what);

// "1.50 GiB", "12.0 MiB", "512 B".
std::string format_bytes(std::int64_t bytes);

// Resident set size of this process now (Linux VmRSS); -1 where unavailable.
std::int64_t resident_bytes();

// Peak resident set size of this process since start or since the last reset (Linux
// VmHWM); -1 where unavailable.
std::int64_t peak_resident_bytes();

// Starts a new peak measurement (Linux >= 4.0: /proc/self/clear_refs); false if unsupported.
bool reset_peak_resident();

}  // namespace cushioncache
