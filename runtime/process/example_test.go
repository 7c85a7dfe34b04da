package process_test

import (
	"context"
	"fmt"
	"os"

	"github.com/drover-cd/drover/runtime"
	"github.com/drover-cd/drover/runtime/process"
)

func Example() {
	dir, err := os.MkdirTemp("", "release")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	r := &process.Runtime{}
	inst, err := r.Start(context.Background(), runtime.Spec{
		Name:    "hello.staging.1",
		Dir:     dir,
		Command: `echo "would listen on port $PORT" | sed 's/[0-9]*$/N/'; exit 3`,
		Env:     []string{"PATH=" + os.Getenv("PATH")},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	<-inst.Done()
	fmt.Println(inst.Tail(10))
	fmt.Println(inst.Err())
	// Output:
	// [would listen on port N]
	// exit status 3
}
