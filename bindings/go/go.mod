module libfidius.invalid/fidius

go 1.19
