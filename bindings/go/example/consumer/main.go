// consumer: load the calc plugin from the directory given as the argument and
// add two numbers, through the fidius Go package required from another module.
package main

import (
	"fmt"
	"log"
	"os"

	"libfidius.invalid/fidius"
)

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: consumer PLUGIN_DIR")
	}
	host, err := fidius.NewHost(fidius.HostConfig{SearchPaths: []string{os.Args[1]}})
	if err != nil {
		log.Fatal(err)
	}
	defer host.Close()
	calc, err := host.Load("calc", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer calc.Close()
	var sum int64
	if err := calc.Invoke("add", &sum, 2, 40); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("consumer: libfidius %s, calc add(2, 40) = %d\n", fidius.Version(), sum)
}
