package jid_test

import (
	"errors"
	"fmt"

	"casp3r/internal/jid"
)

func ExampleParse() {
	j, err := jid.Parse("Juliet@Example.COM/Balcony")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(j)
	fmt.Println(j.Local(), j.Domain(), j.Resource())
	fmt.Println(j.Bare(), j.Domainpart())
	// Output:
	// juliet@example.com/Balcony
	// juliet example.com Balcony
	// juliet@example.com example.com
}

func ExampleParse_malformed() {
	_, err := jid.Parse("romeo&juliet@example.com")
	fmt.Println(errors.Is(err, jid.ErrMalformed))
	fmt.Println(err)
	// Output:
	// true
	// jid: malformed localpart: forbidden character '&'
}

func ExampleJID_WithResource() {
	bare := jid.MustParse("juliet@example.com")
	full, err := bare.WithResource("phone")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(full, full.IsFull(), full.Bare() == bare)
	// Output:
	// juliet@example.com/phone true true
}
