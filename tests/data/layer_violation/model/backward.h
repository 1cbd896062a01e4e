// A model file that includes the UI: cmake/CheckLayers.cmake must refuse it (ctest layers_refuse_backward_arrows).
#include "ui/window.h"
