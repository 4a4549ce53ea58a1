"""FP32 ONNX export, calibration readers, static INT8 QDQ quantization and the accuracy/size report."""
