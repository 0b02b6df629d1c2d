// Self-registering pybind11 bindings: each kernel source adds its functions to the module with
// HARMO_BIND(name) { m.def(...); }, so a new op needs no edit to a shared file.
#pragma once
#include <pybind11/pybind11.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/dtypes.h"

namespace harmo {

using Binder = void (*)(pybind11::module_&);

inline std::vector<Binder>& binders() {
  static std::vector<Binder> registry;  // function-local: safe against static-init order
  return registry;
}

struct RegisterBinder {
  explicit RegisterBinder(Binder b) { binders().push_back(b); }
};

// Python hands the core raw addresses (tensor.data_ptr()), so the core never links torch.
template <class T>
inline T* as_ptr(std::uintptr_t address) {
  return reinterpret_cast<T*>(address);
}

// A code table as the {name: code} dict a module exports (m.attr("..._codes") = code_table(...)).
template <std::size_t N>
pybind11::dict code_table(const NamedCode (&codes)[N]) {
  pybind11::dict d;
  for (const NamedCode& c : codes) d[c.name] = c.code;
  return d;
}

}  // namespace harmo

#define HARMO_BIND(name)                                                        \
  static void harmo_bind_##name(pybind11::module_& m);                          \
  static ::harmo::RegisterBinder harmo_binder_##name(&harmo_bind_##name);       \
  static void harmo_bind_##name(pybind11::module_& m)
