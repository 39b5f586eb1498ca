package kpl_test

import (
	"errors"
	"fmt"

	"github.com/shardbridge/shardbridge/source/kinesis/kpl"
)

func ExampleDeaggregate() {
	// The data of one Kinesis record, as a KPL producer would write it.
	data, err := kpl.Aggregate([]kpl.UserRecord{
		{PartitionKey: "user-1", Data: []byte(`{"click":1}`)},
		{PartitionKey: "user-2", Data: []byte(`{"click":2}`)},
		{PartitionKey: "user-1", ExplicitHashKey: "42", Data: []byte(`{"click":3}`)},
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	recs, err := kpl.Deaggregate(data)
	switch {
	case errors.Is(err, kpl.ErrNotAggregated):
		fmt.Println("an ordinary record: use the data as it is")
	case errors.Is(err, kpl.ErrCorrupt):
		fmt.Println("keep the record raw and warn:", err)
	case err != nil:
		fmt.Println(err)
	}
	for _, r := range recs {
		fmt.Printf("%d %s %q %s\n", r.SubSequence, r.PartitionKey, r.ExplicitHashKey, r.Data)
	}

	_, err = kpl.Deaggregate([]byte("plain data"))
	fmt.Println(err)
	// Output:
	// 0 user-1 "" {"click":1}
	// 1 user-2 "" {"click":2}
	// 2 user-1 "42" {"click":3}
	// kpl: not an aggregated record
}
